package agent

import "time"

// Phase is where an instance stands, as the API and `reconciler instance
// list` show it.
type Phase string

// Phases of PRODUCT.md. The agent reports Applying, Active,
// RestartRequired and Error; the reconciler adds Pending, Denied and
// Unreachable, which an agent cannot know about itself.
const (
	Pending         Phase = "Pending"
	Applying        Phase = "Applying"
	Active          Phase = "Active"
	RestartRequired Phase = "RestartRequired" // Trove's RESTART_REQUIRED_SSL
	Denied          Phase = "Denied"
	Error           Phase = "Error"
	Unreachable     Phase = "Unreachable"
)

// Status is what an agent reports about its instance: with every poll, so
// it doubles as the heartbeat. It carries no secret: certificates are
// named by serial and fingerprint.
type Status struct {
	Instance string `json:"instance"`
	Phase    Phase  `json:"phase"`
	// Generation is the desired-state generation last applied (0 before
	// the first).
	Generation uint64 `json:"generation"`
	// SSL says whether TLS is configured; Verified whether a handshake in
	// the datastore's protocol saw the issued certificate served.
	SSL      bool `json:"ssl"`
	Verified bool `json:"verified"`
	// Serial, Fingerprint and NotAfter name the certificate installed.
	Serial      string    `json:"serial,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	// KeyVersion is the RPC key version the agent seals with.
	KeyVersion uint32 `json:"keyVersion,omitempty"`
	// Message is for people: what happened, or what to do.
	Message string `json:"message,omitempty"`
	// ReportedAt is when the agent sent this status.
	ReportedAt time.Time `json:"reportedAt"`
}
