package transport

import (
	"time"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/vault"
)

// MaxWait is the longest a server holds a poll; DefaultWait is what a
// client asks for when its configuration says nothing.
const (
	MaxWait     = 5 * time.Minute
	DefaultWait = 30 * time.Second
)

// maxEnrollBody bounds an enrollment request: a KeyRequest is about 150
// bytes of JSON.
const maxEnrollBody = 4 << 10

// requestIDSize is the size of the random ID a poll's reply echoes.
const requestIDSize = 16

func pollPath(instance string) string   { return "/v1/agents/" + instance + "/poll" }
func enrollPath(instance string) string { return "/v1/agents/" + instance + "/enroll" }

// pollRequest is the payload of a poll: sealed, since it carries the
// request ID the reply must echo.
type pollRequest struct {
	ID     []byte       `json:"id"`
	WaitMS int64        `json:"waitMs"`
	Status agent.Status `json:"status"`
}

// pollReply is the payload of a poll's reply. Desired may hold a private
// key and NextKey an RPC key: both exist only inside a sealed envelope
// (or, for an instance without RPC encryption, inside the agent's HTTPS
// connection) and are never logged.
type pollReply struct {
	ID      []byte       `json:"id"`
	Desired *desiredWire `json:"desired,omitempty"`
	NextKey *keyWire     `json:"nextKey,omitempty"`
}

type desiredWire struct {
	Generation uint64      `json:"generation"`
	SSL        bool        `json:"ssl"`
	Bundle     *bundleWire `json:"bundle,omitempty"`
	// Withheld says why an SSL-enabled state comes without its bundle.
	Withheld string `json:"withheld,omitempty"`
}

// bundleWire is installers.Bundle with its key as plain bytes: vault.Secret
// refuses to marshal, on purpose, so the one place a key is encoded is
// here, into a payload about to be sealed.
type bundleWire struct {
	CertPEM                []byte `json:"certPEM"`
	ChainPEM               []byte `json:"chainPEM"`
	KeyPEM                 []byte `json:"keyPEM"`
	Serial                 string `json:"serial"`
	Fingerprint            string `json:"fingerprint"`
	MinVersion             string `json:"minVersion,omitempty"`
	RequireSecureTransport bool   `json:"requireSecureTransport,omitempty"`
}

type keyWire struct {
	Version uint32 `json:"version"`
	Key     []byte `json:"key"`
}

func toWire(d *agent.Desired) *desiredWire {
	w := &desiredWire{Generation: d.Generation, SSL: d.SSL}
	if b := d.Bundle; b != nil {
		w.Bundle = &bundleWire{
			CertPEM: b.CertPEM, ChainPEM: b.ChainPEM, KeyPEM: b.Key.Bytes(),
			Serial: b.Serial, Fingerprint: b.Fingerprint,
			MinVersion: b.MinVersion, RequireSecureTransport: b.RequireSecureTransport,
		}
	}
	return w
}

func (w *desiredWire) desired() *agent.Desired {
	d := &agent.Desired{Generation: w.Generation, SSL: w.SSL, Withheld: w.Withheld}
	if b := w.Bundle; b != nil {
		d.Bundle = &installers.Bundle{
			CertPEM: b.CertPEM, ChainPEM: b.ChainPEM, Key: vault.Secret(b.KeyPEM),
			Serial: b.Serial, Fingerprint: b.Fingerprint,
			MinVersion: b.MinVersion, RequireSecureTransport: b.RequireSecureTransport,
		}
	}
	return d
}
