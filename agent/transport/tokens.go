package transport

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/agent/statedir"
	"github.com/reconciler-dev/reconciler/vault"
)

// Tokens holds the reconciler's copy of the one-time enrollment tokens.
// Implementations must be safe for concurrent use.
//
// Token returns the instance's outstanding token, or an error wrapping
// fs.ErrNotExist when it has none. Consume forgets it; consuming a token
// that is not there is not an error, so the server may call it after
// every agent's first sealed poll.
type Tokens interface {
	Token(ctx context.Context, instance string) (vault.Secret, error)
	Consume(ctx context.Context, instance string) error
}

// TokenDir keeps tokens as files, one per instance (NAME.token, 0600, in
// a 0700 directory), for `reconciler agent bootstrap` to write and the
// reconciler to read.
type TokenDir struct {
	dir *statedir.Dir
}

var _ Tokens = (*TokenDir)(nil)

// NewTokenDir opens (or creates) the token directory at path.
func NewTokenDir(path string) (*TokenDir, error) {
	d, err := statedir.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open token directory: %w", err)
	}
	return &TokenDir{dir: d}, nil
}

// Issue makes a fresh token for instance, replacing any outstanding one,
// and returns it for the agent's side.
func (d *TokenDir) Issue(instance string) (vault.Secret, error) {
	t, err := rpc.NewBootstrapToken()
	if err != nil {
		return nil, err
	}
	return t, d.Put(instance, t)
}

// Put stores t as instance's token, replacing any outstanding one.
func (d *TokenDir) Put(instance string, t vault.Secret) error {
	if err := d.dir.Write(instance+".token", FormatToken(t)); err != nil {
		return fmt.Errorf("store token for instance %q: %w", instance, err)
	}
	return nil
}

// Token reads instance's token.
func (d *TokenDir) Token(_ context.Context, instance string) (vault.Secret, error) {
	data, err := d.dir.Read(instance + ".token")
	if err != nil {
		return nil, fmt.Errorf("read token of instance %q: %w", instance, err)
	}
	t, err := ParseToken(data)
	if err != nil {
		return nil, fmt.Errorf("read token of instance %q: %w", instance, err)
	}
	return t, nil
}

// Consume removes instance's token.
func (d *TokenDir) Consume(_ context.Context, instance string) error {
	return d.dir.Remove(instance + ".token")
}

// FormatToken is a token's file form: hex and a newline.
func FormatToken(t vault.Secret) []byte {
	return append([]byte(hex.EncodeToString(t.Bytes())), '\n')
}

// ParseToken reads a token file's content: rpc.TokenSize bytes in hex,
// surrounding white space ignored. Its errors never quote the content.
func ParseToken(data []byte) (vault.Secret, error) {
	data = bytes.TrimSpace(data)
	if len(data) != 2*rpc.TokenSize {
		return nil, fmt.Errorf("parse token: %d characters, want %d hex digits (write the file that reconciler agent bootstrap made, unchanged)", len(data), 2*rpc.TokenSize)
	}
	t := make([]byte, rpc.TokenSize)
	if _, err := hex.Decode(t, data); err != nil {
		return nil, errors.New("parse token: not hex (write the file that reconciler agent bootstrap made, unchanged)")
	}
	return vault.Secret(t), nil
}

// readTokenFile reads the agent's token file; a missing file is an error
// wrapping fs.ErrNotExist.
func readTokenFile(path string) (vault.Secret, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read enrollment token (the agent has no RPC key yet: put the enrollment-token file that reconciler agent bootstrap wrote at enrollmentTokenFile): %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read enrollment token %s: mode %04o lets other users read it: chmod 600 %s", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("read enrollment token: %w", err)
	}
	t, err := ParseToken(data)
	if err != nil {
		return nil, fmt.Errorf("read enrollment token %s: %w", path, err)
	}
	return t, nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
