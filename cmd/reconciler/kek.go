package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/reconciler-dev/reconciler/reconciler/config"
	"github.com/reconciler-dev/reconciler/vault/local"
)

func newKEKCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kek",
		Short: "Manage the local key provider's key-encryption key (KEK)",
	}
	cmd.AddCommand(newKEKRotateCommand())
	return cmd
}

func newKEKRotateCommand() *cobra.Command {
	var (
		configFile string
		newKEKFile string
		generate   bool
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "rotate --config FILE --new-kek-file FILE [--generate]",
		Short: "Re-seal the local key provider's state under a new KEK (reconciler stopped)",
		Long: `Re-seal the local key provider's state directory (keyProvider.local.dir:
the CA key and the master key ring) under the KEK in --new-kek-file. The
old KEK is read as 'reconciler run' reads it: from keyProvider.local.kekFile,
or from RECONCILER_KEK when the configuration names no file. With
--generate, a new random KEK is first written to --new-kek-file (mode
0600), unless that file exists.

Stop the reconciler first: the command refuses while any process has the
state directory open. Then start it with the new KEK. The CA, every
certificate and every wrapped RPC key stay valid; only the KEK changes.

The change is crash-safe. If it is interrupted, the reconciler started with
the new KEK finishes it and one started with the old KEK rolls it back;
running the command again also does. No key is ever printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case configFile == "":
				return errors.New("kek rotate: --config FILE is required")
			case newKEKFile == "":
				return errors.New("kek rotate: --new-kek-file FILE is required")
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			l := cfg.KeyProvider.Local
			if l == nil {
				return errors.New("kek rotate: the configuration has no keyProvider.local; only the local key provider has a KEK (for Vault's transit key, see 'reconciler keys rewrap --rotate-master')")
			}
			old, from, err := configuredKEK(l)
			if err != nil {
				return fmt.Errorf("kek rotate: the old KEK: %w", err)
			}
			out := cmd.OutOrStdout()
			if generate {
				wrote, err := generateKEKFile(newKEKFile)
				if err != nil {
					return fmt.Errorf("kek rotate: %w", err)
				}
				if wrote {
					fmt.Fprintf(out, "Wrote a new KEK to %s (mode 0600).\n", newKEKFile)
				} else {
					fmt.Fprintf(out, "%s exists; using the KEK in it.\n", newKEKFile)
				}
			}
			next, err := local.LoadKEK(newKEKFile)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("kek rotate: the new KEK: %w (pass --generate to have one written there)", err)
			}
			if err != nil {
				return fmt.Errorf("kek rotate: the new KEK: %w", err)
			}
			if err := local.ChangeKEK(cmd.Context(), l.Dir, old, next, local.WithLogger(log)); err != nil {
				return fmt.Errorf("kek rotate: %w", err)
			}
			abs, err := filepath.Abs(newKEKFile)
			if err != nil {
				abs = newKEKFile
			}
			fmt.Fprintf(out, `The local key provider's state in %s is sealed under the KEK in %s;
the old KEK (%s) no longer opens it.

Next:
  1. Point keyProvider.local.kekFile in %s at %s
     (or give the reconciler RECONCILER_KEK from it).
  2. Start the reconciler.
  3. Back up %s, apart from the state directory, then destroy the old KEK.

If the old KEK leaked together with a copy of the state directory, the CA key
and master keys in that copy are the same: also run
  reconciler keys rewrap --config %s --rotate-master
`, l.Dir, abs, from, configFile, abs, abs, configFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the daemon's configuration file")
	f.StringVar(&newKEKFile, "new-kek-file", "", "file holding the new KEK (32 bytes, base64 or hex, mode 0600)")
	f.BoolVar(&generate, "generate", false, "write a new random KEK to --new-kek-file first, unless the file exists")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

// configuredKEK loads the local provider's KEK as the daemon does (see
// openProviders): from kekFile, else from RECONCILER_KEK. It also says
// where the KEK came from, for people.
func configuredKEK(l *config.LocalProvider) (local.KEK, string, error) {
	if l.KEKFile != "" {
		k, err := local.LoadKEK(l.KEKFile)
		return k, "keyProvider.local.kekFile " + l.KEKFile, err
	}
	k, err := local.KEKFromEnv("")
	return k, "the " + local.DefaultKEKEnv + " environment variable", err
}

// generateKEKFile writes a new random KEK to file unless it exists, and
// reports whether it did.
func generateKEKFile(file string) (bool, error) {
	_, err := os.Stat(file)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("generate the new KEK: %w", err)
	}
	k, err := local.GenerateKEK()
	if err != nil {
		return false, err
	}
	if err := local.WriteKEKFile(file, k); err != nil {
		return false, err
	}
	return true, nil
}
