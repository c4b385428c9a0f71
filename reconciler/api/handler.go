package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/specs"
)

// Fleet is what the API reads and asks of the control loop
// (controller.Controller).
//
// Instances returns every instance's view sorted by name, Instance one
// (false when the fleet has no such instance), Resync queues one now
// (false when unknown), and Ready reports whether the fleet was read and
// planned at least once.
//
// RotateKey starts a rotation of the instance's RPC key and returns the
// new version (errors wrapping controller.ErrNoRPCKey,
// ErrRotationPending or ErrUnknownInstance are the caller's to fix).
// Observed returns each instance as its host has it, for diff --server.
type Fleet interface {
	Instances() []controller.View
	Instance(name string) (controller.View, bool)
	Resync(name string) bool
	Ready() bool
	RotateKey(ctx context.Context, name string) (uint32, error)
	Observed(ctx context.Context) ([]*specs.Instance, error)
	Source() controller.SourceState
	AcceptRevision(rev string)
}

var _ Fleet = (*controller.Controller)(nil)

// Routes are the handlers the API serves besides its own.
type Routes struct {
	Metrics http.Handler // /metrics, unauthenticated: it holds no secret
	Webhook http.Handler // POST /v1/webhooks/git, authenticated by its signature; nil: none
}

// NewHandler returns the API:
//
//	GET  /healthz                     200 while the process runs
//	GET  /readyz                      200 once the fleet was read, else 503
//	GET  /metrics                     Prometheus
//	GET  /v1/instances                viewer: every instance
//	GET  /v1/instances/{name}         viewer: one; encrypted_rpc_messaging for admins only
//	GET  /mgmt/instances/{name}/ssl   admin: Trove's mgmt-ssl-show
//	POST /mgmt/instances/{name}/ssl   admin: run the instance's SSL setup again now
//	POST /mgmt/instances/{name}/keys/rotate  admin: rotate the instance's RPC key
//	GET  /v1/observed                 viewer: each instance as its host has it (diff --server)
//	GET  /v1/source                   viewer: the revision applied, and a later one refused and why
//	POST /mgmt/source/accept?revision=HASH  admin: take a revision whose history was rewritten
//	POST /v1/webhooks/git             a signed push webhook
func NewHandler(f Fleet, t *Tokens, r Routes) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !f.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "the fleet has not been read yet"})
			return
		}
		writeJSON(w, 200, map[string]string{"status": "ready"})
	})
	if r.Metrics != nil {
		mux.Handle("GET /metrics", r.Metrics)
	}
	if r.Webhook != nil {
		mux.Handle("POST /v1/webhooks/git", r.Webhook)
	}
	mux.Handle("GET /v1/instances", t.Require(Viewer, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		admin := isAdmin(req)
		views := f.Instances()
		out := make([]instanceJSON, len(views))
		for i, v := range views {
			out[i] = toJSON(v, admin)
		}
		writeJSON(w, 200, map[string]any{"instances": out})
	})))
	mux.Handle("GET /v1/instances/{name}", t.Require(Viewer, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		v, ok := f.Instance(req.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, "no instance "+quote(req.PathValue("name"))+" in the fleet")
			return
		}
		writeJSON(w, 200, map[string]any{"instance": toJSON(v, isAdmin(req))})
	})))
	mux.Handle("GET /mgmt/instances/{name}/ssl", t.Require(Admin, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		v, ok := f.Instance(req.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, "no instance "+quote(req.PathValue("name"))+" in the fleet")
			return
		}
		writeJSON(w, 200, map[string]any{"ssl": sslJSON(v)})
	})))
	mux.Handle("POST /mgmt/instances/{name}/keys/rotate", t.Require(Admin, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		v, err := f.RotateKey(req.Context(), req.PathValue("name"))
		switch {
		case errors.Is(err, controller.ErrUnknownInstance):
			writeError(w, http.StatusNotFound, "no instance "+quote(req.PathValue("name"))+" in the fleet")
		case errors.Is(err, controller.ErrNoRPCKey), errors.Is(err, controller.ErrRotationPending):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, "the rotation failed; the daemon's log says why")
		default:
			writeJSON(w, http.StatusAccepted, map[string]any{"rpc": map[string]any{"next_key_version": v,
				"status": "delivered under the current key; it replaces it when the agent uses it"}})
		}
	})))
	mux.Handle("GET /v1/observed", t.Require(Viewer, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ins, err := f.Observed(req.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "cannot read the observed state; the daemon's log says why")
			return
		}
		docs := make([]map[string]any, 0, len(ins))
		for _, in := range ins {
			docs = append(docs, map[string]any{"file": in.File, "document": in.Raw})
		}
		writeJSON(w, 200, map[string]any{"instances": docs})
	})))
	mux.Handle("GET /v1/source", t.Require(Viewer, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"source": f.Source()})
	})))
	mux.Handle("POST /mgmt/source/accept", t.Require(Admin, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rev := req.URL.Query().Get("revision")
		if !fullHash(rev) {
			writeError(w, http.StatusBadRequest, "give the full commit hash to accept: ?revision=<40 hex digits>")
			return
		}
		f.AcceptRevision(rev)
		writeJSON(w, http.StatusAccepted, map[string]any{"source": map[string]string{"accepted": rev,
			"status": "read again now; its own commit is still verified"}})
	})))
	mux.Handle("POST /mgmt/instances/{name}/ssl", t.Require(Admin, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("name")
		if !f.Resync(name) {
			writeError(w, http.StatusNotFound, "no instance "+quote(name)+" in the fleet")
			return
		}
		v, _ := f.Instance(name)
		writeJSON(w, http.StatusAccepted, map[string]any{"ssl": sslJSON(v)})
	})))
	return mux
}

// fullHash reports whether s is a full SHA-1 or SHA-256 commit hash.
func fullHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// instanceJSON is an instance as the API answers it. It carries no
// secret: certificates by serial and expiry, keys by version.
type instanceJSON struct {
	Name       string    `json:"name"`
	File       string    `json:"file,omitempty"`
	Datastore  string    `json:"datastore,omitempty"`
	Phase      string    `json:"phase"`
	Message    string    `json:"message,omitempty"`
	SSL        bool      `json:"ssl"`
	Verified   bool      `json:"ssl_verified"`
	Serial     string    `json:"certificate_serial,omitempty"`
	NotAfter   time.Time `json:"certificate_expires,omitzero"`
	Generation uint64    `json:"generation"`
	LastSeen   time.Time `json:"agent_last_seen,omitzero"`
	Denied     []string  `json:"denied,omitempty"`
	Unmanaged  bool      `json:"unmanaged,omitempty"`
	// EncryptedRPC is Trove's admin-only field.
	EncryptedRPC *rpcJSON `json:"encrypted_rpc_messaging,omitempty"`
}

type rpcJSON struct {
	Enabled    bool   `json:"enabled"`
	KeyVersion uint32 `json:"key_version,omitempty"`
}

func toJSON(v controller.View, admin bool) instanceJSON {
	out := instanceJSON{Name: v.Name, File: v.File, Datastore: v.Datastore, Phase: string(v.Phase), Message: v.Message,
		SSL: v.SSL, Verified: v.Verified, Serial: v.Serial, NotAfter: v.NotAfter, Generation: v.Generation,
		LastSeen: v.LastSeen, Denied: v.Denied, Unmanaged: v.Unmanaged}
	if admin {
		out.EncryptedRPC = &rpcJSON{Enabled: v.RPC, KeyVersion: v.KeyVersion}
	}
	return out
}

// sslJSON is Trove's mgmt-ssl-show body.
func sslJSON(v controller.View) map[string]any {
	m := map[string]any{"enabled": v.SSL, "verified": v.Verified, "phase": v.Phase}
	if v.Message != "" {
		m["message"] = v.Message
	}
	if v.Serial != "" {
		m["certificate_serial"] = v.Serial
		m["certificate_expires"] = v.NotAfter
	}
	return m
}

func isAdmin(r *http.Request) bool {
	p, _ := PrincipalFrom(r.Context())
	return p.Role == Admin
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
