package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/reconciler-dev/reconciler/reconciler/config"
	"github.com/reconciler-dev/reconciler/reconciler/rekey"
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
	res, err := rekey.Rewrap(ctx, st, kw)
	for _, f := range res.Failed {
		fmt.Fprintf(errOut, "%s: RPC key version %d: %s\n", f.Instance, f.Version, f.Reason)
	}
	fmt.Fprintf(out, "%d rewrapped, %d already current, %d failed", res.Rewrapped, res.Current, len(res.Failed))
	if res.Gone > 0 {
		fmt.Fprintf(out, ", %d removed meanwhile", res.Gone)
	}
	fmt.Fprintln(out)
	if err != nil {
		return fmt.Errorf("keys rewrap: %w", err)
	}
	if n := len(res.Failed); n > 0 {
		return fmt.Errorf("keys rewrap: %d of %d keys failed", n, res.Rewrapped+res.Current+res.Gone+n)
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
