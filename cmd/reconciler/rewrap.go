package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/reconciler-dev/reconciler/reconciler/config"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
)

func newKeysRewrapCommand() *cobra.Command {
	var (
		configFile   string
		rotateMaster bool
		logLevel     string
	)
	cmd := &cobra.Command{
		Use:   "rewrap --config FILE [--rotate-master]",
		Short: "Rewrap every stored RPC key under the key provider's newest master key version",
		Long: `Rewrap every RPC key in the state store (store.sqlite or store.postgres)
under the newest master key version of the default key provider
(keyProvider.default): the newest version of the local provider's key ring,
or of Vault's transit key. The RPC keys themselves stay the same, so the
agents notice nothing.

With --rotate-master, first rotate the master key: a new key ring version
(local) or a new version of the transit key (vault). Rotate and rewrap when
a master key version may have leaked; then raise the minimum decryption
version (for Vault, min_decryption_version on the transit key) so the old
versions no longer unwrap.

It can run beside the reconciler: a key the reconciler replaces meanwhile
is left as the reconciler wrote it. It prints how many keys were rewrapped,
were already current and failed, each failure with its instance and reason,
and exits 1 if any failed. No key, wrapped or not, is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return errors.New("keys rewrap: --config FILE is required")
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			return rewrapStore(cmd, cfg, rotateMaster, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the daemon's configuration file")
	f.BoolVar(&rotateMaster, "rotate-master", false, "rotate the default key provider's master key first")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

// rewrapStore wires keys rewrap: the providers and the store as the
// daemon opens them, the rotation, the walk and its report.
func rewrapStore(cmd *cobra.Command, cfg *config.Config, rotateMaster bool, log *slog.Logger) error {
	ctx := cmd.Context()
	st, closeStore, err := openStateStore(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("keys rewrap: %w", err)
	}
	defer closeStore()
	providers, closeProviders, err := openProviders(ctx, cfg, log, prometheus.NewRegistry())
	defer closeProviders()
	if lp, ok := providers.Issuers["local"].(*local.Provider); ok {
		defer lp.Close() // lets 'kek rotate' run after us in this process
	}
	if err != nil {
		return err
	}
	kw := providers.Keys
	if kw == nil {
		return fmt.Errorf("keys rewrap: the default key provider %q wraps no RPC keys", cfg.KeyProvider.Default)
	}

	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if rotateMaster {
		mr, ok := kw.(vault.MasterRotator)
		if !ok {
			return fmt.Errorf("keys rewrap: the %s key provider has no master key to rotate", cfg.KeyProvider.Default)
		}
		if err := mr.RotateMaster(ctx); err != nil {
			return fmt.Errorf("keys rewrap: %w", err)
		}
		fmt.Fprintf(out, "Rotated the master key of the %s key provider.\n", cfg.KeyProvider.Default)
	}
	res, err := rewrapKeys(ctx, st, kw)
	for _, f := range res.failed {
		fmt.Fprintf(errOut, "%s: RPC key version %d: %s\n", f.instance, f.version, f.reason)
	}
	fmt.Fprintf(out, "%d rewrapped, %d already current, %d failed", res.rewrapped, res.current, len(res.failed))
	if res.gone > 0 {
		fmt.Fprintf(out, ", %d removed meanwhile", res.gone)
	}
	fmt.Fprintln(out)
	if err != nil {
		return fmt.Errorf("keys rewrap: %w", err)
	}
	if n := len(res.failed); n > 0 {
		return fmt.Errorf("keys rewrap: %d of %d keys failed", n, res.rewrapped+res.current+res.gone+n)
	}
	return nil
}

// openStateStore opens the configured state store, as the daemon does,
// but refuses to create a SQLite file that is not there: a rewrap of a
// new, empty store would report success on a mistyped path.
func openStateStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, func(), error) {
	if pg := cfg.Store.Postgres; pg != nil {
		st, err := openPostgres(ctx, pg, log)
		if err != nil {
			return nil, nil, err
		}
		return st, st.Close, nil
	}
	path := cfg.Store.SQLite.Path
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no state store at %s (store.sqlite.path): nothing to rewrap", path)
	}
	st, err := sqlite.Open(ctx, path, sqlite.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	return st, func() { st.Close() }, nil
}

// rewrapResult counts what rewrapKeys did with each stored key.
type rewrapResult struct {
	rewrapped int // written back under a newer master key version
	current   int // already under the newest
	gone      int // removed by the reconciler meanwhile
	failed    []rewrapFailure
}

type rewrapFailure struct {
	instance string
	version  uint32
	reason   string
}

// rewrapKeys has kw rewrap every wrapped key of every record in st and
// writes back those it moved to a newer master key version. A key that
// fails is counted and the walk goes on; the error is for the walk
// itself (the store cannot list, ctx ended).
func rewrapKeys(ctx context.Context, st store.Store, kw vault.KeyWrapper) (rewrapResult, error) {
	var res rewrapResult
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
				res.failed = append(res.failed, rewrapFailure{instance: r.Name, version: k.Version, reason: scrub(err.Error(), k.Wrapped)})
			case outcome == keyRewrapped:
				res.rewrapped++
			case outcome == keyCurrent:
				res.current++
			case outcome == keyGone:
				res.gone++
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
		v, ok := masterVersion(fresh)
		if !ok {
			return 0, errors.New("the key provider's rewrapped key names no master key version")
		}
		if old, ok := masterVersion(k.Wrapped); ok && old == v && k.MasterVersion == v {
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
func masterVersion(wrapped []byte) (int, bool) {
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
