package installers

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
)

// Restarts is what the installers of datastores that read their TLS
// configuration only at start (MongoDB, Cassandra, Manticore) share:
// restart when the agent may, roll back on failure, and remember the last
// outcome so that repeating an Install or Remove reports it again.
type Restarts struct {
	DS     Datastore
	Server string       // the server's name in messages: mongod, Cassandra, searchd
	Config string       // the configuration file the installer edits, for logs
	Log    *slog.Logger // set by the installer's New; never nil after it

	last    *Result
	lastKey [32]byte
}

// Restart restarts the server with DS.RestartCommand when the agent may,
// rolling t back if that fails; otherwise it reports RestartRequired.
// what says what the restart is for; secrets are cut from command output.
func (r *Restarts) Restart(ctx context.Context, t *Tx, what string, secrets [][]byte) (*Result, error) {
	if r.DS.AllowRestart && len(r.DS.RestartCommand) > 0 {
		if err := RunCommand(ctx, r.DS.RestartCommand, secrets...); err != nil {
			return nil, r.Fail(t, fmt.Errorf("restart %s (datastore.restartCommand): %w", r.Server, err))
		}
		return &Result{Outcome: Restarted, Message: "restarted " + r.Server + " to " + what}, nil
	}
	return &Result{Outcome: RestartRequired, Message: "restart " + r.Server + " to " + what}, nil
}

// Fail rolls every file of t back and returns err, with any rollback
// failure joined to it.
func (r *Restarts) Fail(t *Tx, err error) error {
	if rerr := t.Rollback(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	r.Log.Warn(r.DS.Type+" TLS change rolled back", "config", r.Config, "error", err)
	return err
}

// Done commits t and remembers res under key (a Digest of the call), so
// that repeating the same call reports it again.
func (r *Restarts) Done(t *Tx, key [32]byte, res *Result, op, serial string) *Result {
	if err := t.Commit(); err != nil {
		r.Log.Warn(r.DS.Type+": could not delete previous key material", "error", err)
	}
	res.Files = t.Touched
	r.last, r.lastKey = res, key
	r.Log.Info(r.DS.Type+" TLS "+op, "config", r.Config, "outcome", string(res.Outcome), "files", res.Files, "serial", serial)
	out := *res
	return &out
}

// Remembers reports whether the last change this installer made was the
// call identified by key.
func (r *Restarts) Remembers(key [32]byte) bool { return r.last != nil && r.lastKey == key }

// Repeat answers a call that changed nothing: the outcome of the call that
// made the change, when this installer made it, or else what the files on
// disk imply (why says what they are).
func (r *Restarts) Repeat(key [32]byte, why string) *Result {
	if r.Remembers(key) {
		out := *r.last
		return &out
	}
	return &Result{
		Outcome: RestartRequired,
		Message: why + "; if " + r.Server + " has not restarted since they were written, restart it",
	}
}

// Digest identifies a call by its parts (strings and byte slices), each
// length-prefixed so that no two different calls collide by concatenation.
func Digest(parts ...any) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			fmt.Fprintf(h, "%d:%s", len(p), p)
		case []byte:
			fmt.Fprintf(h, "%d:", len(p))
			h.Write(p)
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
