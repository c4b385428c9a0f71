package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/reconciler-dev/reconciler/reconciler/config"
)

// Role is what a token may do.
type Role string

// Roles.
const (
	Viewer Role = config.RoleViewer
	Admin  Role = config.RoleAdmin
)

// allows reports whether a principal of role r may use a route needing
// need: admin may do everything a viewer may.
func (r Role) allows(need Role) bool { return r == Admin || r == need }

// Principal is who made a request.
type Principal struct {
	Name string
	Role Role
}

// minTokenLen is the shortest token accepted: 128 bits in hex.
const minTokenLen = 32

// Tokens authenticates requests by bearer token.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest [sha256.Size]byte
	who    Principal
}

// LoadTokens reads each token's file. A file others can read, a token
// shorter than 32 characters, or one token given to two names is refused.
func LoadTokens(tokens []config.Token) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]string{}
	for _, tk := range tokens {
		info, err := os.Stat(tk.File)
		if err != nil {
			return nil, fmt.Errorf("load API token %q: %w", tk.Name, err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("load API token %q: %s has mode %04o: chmod 600 %s", tk.Name, tk.File, info.Mode().Perm(), tk.File)
		}
		data, err := os.ReadFile(tk.File)
		if err != nil {
			return nil, fmt.Errorf("load API token %q: %w", tk.Name, err)
		}
		secret := bytes.TrimSpace(data)
		if len(secret) < minTokenLen {
			return nil, fmt.Errorf("load API token %q: %s holds %d characters, want at least %d (openssl rand -hex 32 > %s)", tk.Name, tk.File, len(secret), minTokenLen, tk.File)
		}
		d := sha256.Sum256(secret)
		if other, dup := seen[d]; dup {
			return nil, fmt.Errorf("load API token %q: the same token as %q: give each its own", tk.Name, other)
		}
		seen[d] = tk.Name
		t.entries = append(t.entries, tokenEntry{digest: d, who: Principal{Name: tk.Name, Role: Role(tk.Role)}})
	}
	return t, nil
}

var errNoToken = errors.New("no bearer token")

// Authenticate returns the principal whose token the request carries.
func (t *Tokens) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Principal{}, errNoToken
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	var found Principal
	match := 0
	for _, e := range t.entries { // every entry, whatever matches: constant time in the token
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found, match = e.who, 1
		}
	}
	if match == 0 {
		return Principal{}, errors.New("unknown bearer token")
	}
	return found, nil
}

type principalKey struct{}

// PrincipalFrom returns the principal Require put in the request's
// context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Require serves h only to principals whose role allows need: 401 without
// a valid token, 403 with one that does not allow it.
func (t *Tokens) Require(need Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := t.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reconciler"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required: Authorization: Bearer <token from a file named in tokens:>")
			return
		}
		if !p.Role.allows(need) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has role %s; this needs %s", p.Name, p.Role, need))
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// writeError answers with a JSON error body.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
