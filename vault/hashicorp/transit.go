package hashicorp

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/reconciler-dev/reconciler/vault"
)

// NewKey asks transit for a 256-bit data key derived for the instance: the
// plaintext, once, and the ciphertext to store.
func (c *Client) NewKey(ctx context.Context, instance string) (*vault.DataKey, error) {
	path := c.cfg.TransitMount + "/datakey/plaintext/" + c.cfg.TransitKey
	var secret *api.Secret
	err := c.do(ctx, "transit", "datakey", path, func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().WriteWithContext(ctx, path, map[string]any{
			"context": derivation(instance),
			"bits":    256,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create RPC key for %s: %w", instance, err)
	}
	plain, _ := field(secret, "plaintext")
	ciphertext, _ := field(secret, "ciphertext")
	key, err := base64.StdEncoding.DecodeString(plain)
	if err != nil || len(key) != 32 || ciphertext == "" {
		return nil, fmt.Errorf("create RPC key for %s: vault's answer holds no 256-bit key", instance)
	}
	return &vault.DataKey{Plaintext: key, Wrapped: []byte(ciphertext), MasterVersion: keyVersion(ciphertext)}, nil
}

// Unwrap has transit decrypt a stored key with the instance's context.
func (c *Client) Unwrap(ctx context.Context, instance string, wrapped []byte) (vault.Secret, error) {
	if !strings.HasPrefix(string(wrapped), "vault:v") {
		return nil, fmt.Errorf("unwrap RPC key for %s: %w: not a transit ciphertext", instance, vault.ErrDenied)
	}
	path := c.cfg.TransitMount + "/decrypt/" + c.cfg.TransitKey
	var secret *api.Secret
	err := c.do(ctx, "transit", "decrypt", path, func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().WriteWithContext(ctx, path, map[string]any{
			"ciphertext": string(wrapped),
			"context":    derivation(instance),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("unwrap RPC key for %s: %w", instance, err)
	}
	plain, _ := field(secret, "plaintext")
	key, err := base64.StdEncoding.DecodeString(plain)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("unwrap RPC key for %s: vault's answer holds no key", instance)
	}
	return key, nil
}

// Rewrap has transit re-encrypt a stored key under the newest key version;
// the plaintext never leaves Vault.
func (c *Client) Rewrap(ctx context.Context, instance string, wrapped []byte) ([]byte, error) {
	path := c.cfg.TransitMount + "/rewrap/" + c.cfg.TransitKey
	var secret *api.Secret
	err := c.do(ctx, "transit", "rewrap", path, func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().WriteWithContext(ctx, path, map[string]any{
			"ciphertext": string(wrapped),
			"context":    derivation(instance),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rewrap RPC key for %s: %w", instance, err)
	}
	ciphertext, _ := field(secret, "ciphertext")
	if ciphertext == "" {
		return nil, fmt.Errorf("rewrap RPC key for %s: vault's answer holds no ciphertext", instance)
	}
	// Transit rewraps without checking the context; decrypting proves the
	// ciphertext belonged to this instance before it is stored again.
	if _, err := c.Unwrap(ctx, instance, []byte(ciphertext)); err != nil {
		return nil, fmt.Errorf("rewrap RPC key for %s: %w", instance, err)
	}
	return []byte(ciphertext), nil
}

// RotateMaster rotates the transit key: new data keys and rewraps use the
// new version.
func (c *Client) RotateMaster(ctx context.Context) error {
	path := c.cfg.TransitMount + "/keys/" + c.cfg.TransitKey + "/rotate"
	err := c.do(ctx, "transit", "rotate", path, func(ctx context.Context) error {
		_, err := c.api.Logical().WriteWithContext(ctx, path, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate transit key: %w", err)
	}
	c.log.InfoContext(ctx, "rotated the transit key", "key", c.cfg.TransitKey)
	return nil
}

// derivation is the transit context that binds a key to its instance.
func derivation(instance string) string {
	return base64.StdEncoding.EncodeToString([]byte("reconciler/rpc/" + instance))
}

// keyVersion reads N from a "vault:vN:..." ciphertext.
func keyVersion(ciphertext string) int {
	rest, ok := strings.CutPrefix(ciphertext, "vault:v")
	if !ok {
		return 0
	}
	v, _ := strconv.Atoi(rest[:max(strings.IndexByte(rest, ':'), 0)])
	return v
}
