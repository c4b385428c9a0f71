package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/specs"
)

// ErrNoRPCKey is returned when rotating the key of an instance that has
// none (rpcEncryption is disabled, or its first key is not made yet).
var ErrNoRPCKey = errors.New("the instance has no RPC key to rotate")

// ErrRotationPending is returned while a rotation waits for the agent.
var ErrRotationPending = errors.New("a key rotation is already waiting for the agent's acknowledgement")

// RotateKey starts a rotation of the instance's RPC key: a new key from
// the provider is stored wrapped as the next key first, then handed to the
// agents' server, which delivers it under the current key; the agent's
// first message under it completes the rotation (KeyPromoted). It returns
// the new version.
func (c *Controller) RotateKey(ctx context.Context, name string) (uint32, error) {
	c.mu.Lock()
	known := c.plan[name] != nil
	c.mu.Unlock()
	if !known {
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, ErrUnknownInstance)
	}
	rec, err := c.cfg.Store.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, ErrNoRPCKey)
	}
	if err != nil {
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, err)
	}
	if err := c.register(ctx, rec, false); err != nil {
		return 0, err
	}
	cur, ok := rec.Key(store.KeyCurrent)
	switch _, pending := rec.Key(store.KeyNext); {
	case !ok:
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, ErrNoRPCKey)
	case pending:
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, ErrRotationPending)
	}
	dk, err := c.cfg.Providers.Keys.NewKey(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, err)
	}
	next := cur.Version + 1
	if _, err := c.cfg.Store.Update(ctx, name, func(r *store.Record) error {
		if c, ok := r.Key(store.KeyCurrent); !ok || c.Version != cur.Version {
			return ErrRotationPending // changed under us: let the caller try again
		}
		if _, pending := r.Key(store.KeyNext); pending {
			return ErrRotationPending
		}
		r.Keys = append(r.Keys, store.WrappedKey{Version: next, Wrapped: dk.Wrapped, MasterVersion: dk.MasterVersion, State: store.KeyNext})
		return nil
	}); err != nil {
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, err)
	}
	if err := c.cfg.Agents.Rotate(name, transport.Key{Version: next, Secret: dk.Plaintext}); err != nil {
		return 0, fmt.Errorf("rotate RPC key of %s: %w", name, err)
	}
	c.log.InfoContext(ctx, "RPC key rotation started; waiting for the agent's acknowledgement", "instance", name, "key_version", next)
	return next, nil
}

// KeyPromoted is the agents' server hook for an acknowledged rotation:
// the next key becomes the instance's only key in the store.
func (c *Controller) KeyPromoted(ctx context.Context, name string, version uint32) {
	_, err := c.cfg.Store.Update(ctx, name, func(r *store.Record) error {
		if k, ok := r.Key(store.KeyNext); !ok || k.Version != version {
			return nil // already promoted
		}
		r.PromoteNext()
		return nil
	})
	if err != nil {
		c.log.ErrorContext(ctx, "cannot record the acknowledged RPC key; the old one is kept in the store until the next try", "instance", name, "key_version", version, "error", err)
		return
	}
	c.log.InfoContext(ctx, "RPC key rotated", "instance", name, "key_version", version)
}

// ErrUnknownInstance is returned for an instance not in the fleet.
var ErrUnknownInstance = errors.New("no such instance in the fleet")

// Observed returns each instance as its host has it, for `reconciler diff
// --server`: the document last applied, with spec.ssl as its agent last
// proved it (enabled only when the agent saw the issued certificate
// served, over a sealed channel). Instances never applied are absent.
func (c *Controller) Observed(ctx context.Context) ([]*specs.Instance, error) {
	ins, err := c.observed(ctx)
	if err != nil {
		return nil, fmt.Errorf("read observed state: %w", err)
	}
	for _, in := range ins {
		obs, ok := c.cfg.Agents.Observed(in.Metadata.Name)
		verified := ok && obs.Sealed && obs.Status.SSL && obs.Status.Verified && obs.Status.Phase == agent.Active
		if in.SSLEnabled() && !verified {
			in.Spec.SSL = specs.Disabled
			if in.Raw != nil {
				if spec, ok := in.Raw["spec"].(map[string]any); ok {
					spec["ssl"] = specs.Disabled
				}
			}
		}
	}
	return ins, nil
}
