// Package rekey moves the RPC keys of the state store to the key
// provider's newest master key, after the master key (Vault transit's key,
// or the local provider's key ring) was rotated: `reconciler keys rewrap`.
//
// Keys are rewrapped while the reconciler runs. The provider is called
// outside the store's transaction, which only compares and swaps: a key
// the reconciler changed in between is rewrapped again, and one it removed
// is counted as gone, never written back.
package rekey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/vault"
)

// Result counts what Rewrap did with each stored key.
type Result struct {
	Rewrapped int // written back under a newer master key version
	Current   int // already under the newest
	Gone      int // removed by the reconciler meanwhile
	Failed    []Failure
}

// Failure is a key that could not be rewrapped, and why (never with the
// wrapped bytes).
type Failure struct {
	Instance string
	Version  uint32
	Reason   string
}

// Rewrap has kw rewrap every wrapped key of every record in st and
// writes back those it moved to a newer master key version. A key that
// fails is counted and the walk goes on; the error is for the walk
// itself (the store cannot list, ctx ended).
func Rewrap(ctx context.Context, st store.Store, kw vault.KeyWrapper) (Result, error) {
	var res Result
	recs, err := st.List(ctx)
	if err != nil {
		return res, err
	}
	for _, r := range recs {
		for _, k := range r.Keys {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			outcome, err := rewrapKey(ctx, st, kw, r.Name, k)
			switch {
			case err != nil:
				res.Failed = append(res.Failed, Failure{Instance: r.Name, Version: k.Version, Reason: scrub(err.Error(), k.Wrapped)})
			case outcome == keyRewrapped:
				res.Rewrapped++
			case outcome == keyCurrent:
				res.Current++
			case outcome == keyGone:
				res.Gone++
			}
		}
	}
	return res, nil
}

type rewrapOutcome int

const (
	keyRewrapped rewrapOutcome = iota + 1
	keyCurrent
	keyGone
)

// rewrapAttempts bounds how often one key is rewrapped again because the
// reconciler changed it between the read and the write.
const rewrapAttempts = 3

// errKeyChanged is swapWrapped's refusal: the stored key is no longer the
// one rewrapped.
var errKeyChanged = errors.New("the key changed in the store since it was read")

// rewrapKey rewraps instance's key k and, unless it is already under the
// newest master key version, stores the result in place of k, if k is
// still what is stored. The key provider is called before the store's
// transaction, which only compares and swaps. A key the reconciler
// replaced meanwhile (same version, a promotion or a new wrap) is
// rewrapped in turn; one it removed is keyGone.
func rewrapKey(ctx context.Context, st store.Store, kw vault.KeyWrapper, instance string, k store.WrappedKey) (rewrapOutcome, error) {
	for attempt := 1; ; attempt++ {
		fresh, err := kw.Rewrap(ctx, instance, k.Wrapped)
		if err != nil {
			return 0, err
		}
		v, ok := MasterVersion(fresh)
		if !ok {
			return 0, errors.New("the key provider's rewrapped key names no master key version")
		}
		if old, ok := MasterVersion(k.Wrapped); ok && old == v && k.MasterVersion == v {
			return keyCurrent, nil
		}
		_, err = st.Update(ctx, instance, func(r *store.Record) error { return swapWrapped(r, k, fresh, v) })
		if err == nil {
			return keyRewrapped, nil
		}
		if !errors.Is(err, errKeyChanged) || attempt == rewrapAttempts {
			return 0, fmt.Errorf("store the rewrapped key: %w", err)
		}
		r, err := st.Get(ctx, instance)
		if errors.Is(err, store.ErrNotFound) {
			return keyGone, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read the key again: %w", err)
		}
		i := keyIndex(r, k.Version)
		if i < 0 {
			return keyGone, nil
		}
		k = r.Keys[i] // what the reconciler wrote: rewrap that instead
	}
}

// swapWrapped replaces the wrapped bytes of r's key version k.Version by
// fresh, under master key version v, if they are still k's: the key was
// not replaced, removed or rewrapped since it was read. It changes r only,
// as store.Update's fn must.
func swapWrapped(r *store.Record, k store.WrappedKey, fresh []byte, v int) error {
	i := keyIndex(r, k.Version)
	if i < 0 || !bytes.Equal(r.Keys[i].Wrapped, k.Wrapped) {
		return errKeyChanged
	}
	r.Keys[i].Wrapped = bytes.Clone(fresh)
	r.Keys[i].MasterVersion = v
	return nil
}

func keyIndex(r *store.Record, version uint32) int {
	for i, k := range r.Keys {
		if k.Version == version {
			return i
		}
	}
	return -1
}

// masterVersion reads the master key version N from a wrapped key in the
// key providers' formats, "local:v<N>:..." (vault/local) and
// "vault:v<N>:..." (Vault transit): what the store records beside it.
func MasterVersion(wrapped []byte) (int, bool) {
	for _, prefix := range []string{"local:v", "vault:v"} {
		rest, ok := bytes.CutPrefix(wrapped, []byte(prefix))
		if !ok {
			continue
		}
		ver, _, ok := bytes.Cut(rest, []byte(":"))
		if !ok {
			return 0, false
		}
		v, err := strconv.Atoi(string(ver))
		if err != nil || v < 1 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// scrub keeps a wrapped key out of an error message a key provider may
// have quoted it in.
func scrub(msg string, wrapped []byte) string {
	if len(wrapped) == 0 {
		return msg
	}
	return strings.ReplaceAll(msg, string(wrapped), "[wrapped key]")
}
