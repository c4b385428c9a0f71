package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/api"
	"github.com/reconciler-dev/reconciler/reconciler/config"
	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/reconciler/store/postgres"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/sources/dir"
	"github.com/reconciler-dev/reconciler/sources/git"
	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/sources/webhook"
	"github.com/reconciler-dev/reconciler/specs"
	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/hashicorp"
	"github.com/reconciler-dev/reconciler/vault/local"
)

func newRunCommand() *cobra.Command {
	var (
		configFile string
		logLevel   string
		git        gitFlags
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the reconciler daemon: watch the fleet, drive the agents, serve the API",
		Long: `Run the reconciler: read the fleet from its source (a git branch, polled and
woken by push webhooks, or a directory, watched), plan it with the same
planner as diff, and drive each instance's agent until its datastore serves
TLS with a certificate from the key provider, verified by the agent. It
serves the API (instances, /mgmt/instances/NAME/ssl, /healthz, /readyz,
/metrics, /v1/webhooks/git) and the agents' endpoint, both over HTTPS.

The configuration file is described in README.md ("Running the reconciler").
Git credentials come from the environment, as for diff.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return errors.New("run: --config FILE is required")
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			return runDaemon(cmd.Context(), configFile, git, log)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the daemon's configuration file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&git.username, "git-username", "", "username for https remotes (password from RECONCILER_GIT_PASSWORD)")
	cmd.Flags().StringVar(&git.sshKey, "git-ssh-key", "", "private key file for ssh remotes")
	cmd.Flags().StringVar(&git.knownHosts, "git-known-hosts", "", "known_hosts file for ssh remotes")
	cmd.Flags().StringVar(&git.caFile, "git-ca-file", "", "PEM CA bundle for https remotes")
	return cmd
}

// runDaemon wires the daemon from its configuration and runs it until ctx
// ends.
func runDaemon(ctx context.Context, file string, gf gitFlags, log *slog.Logger) error {
	cfg, err := config.Load(file)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := newService(cfg, log, reg)

	providers, closeProviders, err := openProviders(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer closeProviders()
	d.providers = providers
	if d.source, d.revision, err = openSource(ctx, cfg, gf, log); err != nil {
		return err
	}
	if d.verify, err = revisionCheck(cfg, d.source); err != nil {
		return err
	}
	serving, caFile, err := servingTLS(ctx, cfg, providers)
	if err != nil {
		return err
	}
	if d.tokens, err = transport.NewTokenDir(cfg.Agents.TokenDir); err != nil {
		return err
	}
	if d.apiTokens, err = api.LoadTokens(cfg.Tokens); err != nil {
		return err
	}
	if g := cfg.Source.Git; g != nil && g.WebhookSecretFile != "" {
		secret, err := os.ReadFile(g.WebhookSecretFile)
		if err != nil {
			return fmt.Errorf("read source.git.webhookSecretFile: %w", err)
		}
		v, err := webhook.New(bytes.TrimSpace(secret), webhook.WithLogger(log), webhook.WithRegisterer(reg))
		if err != nil {
			return fmt.Errorf("configure webhooks: %w", err)
		}
		d.webhook = v.Handler(func(context.Context, webhook.Push) { d.trigger() })
	}

	// The store decides how the daemon leads: alone on SQLite, by
	// election on PostgreSQL.
	var reconcile func(ctx context.Context) error
	stateDesc := ""
	if pg := cfg.Store.Postgres; pg != nil {
		st, err := openPostgres(ctx, pg, log)
		if err != nil {
			return err
		}
		defer st.Close()
		roots, err := replicaRoots(cfg, caFile)
		if err != nil {
			return err
		}
		d.leaders = newLeaderCache(st, cfg.Replicas.ID, roots, log)
		reconcile = func(ctx context.Context) error { return d.replicate(ctx, st) }
		stateDesc = "postgresql, replica " + cfg.Replicas.ID
	} else {
		st, err := sqlite.Open(ctx, cfg.Store.SQLite.Path, sqlite.WithLogger(log))
		if err != nil {
			return err
		}
		defer st.Close()
		reconcile = func(ctx context.Context) error { return d.lead(ctx, st) }
		stateDesc = cfg.Store.SQLite.Path
	}

	apiLn, err := net.Listen("tcp", cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("listen for the API: %w", err)
	}
	agentsLn, err := net.Listen("tcp", cfg.Listen.Agents)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("listen for agents: %w", err)
	}
	log.InfoContext(ctx, "reconciler started", "api", "https://"+apiLn.Addr().String(),
		"agents", "https://"+agentsLn.Addr().String(), "ca", caFile, "state", stateDesc)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return reconcile(ctx) })
	g.Go(func() error {
		return api.Serve(ctx, apiLn, d.apiHandler(), serving, time.Minute, 10*time.Second, log)
	})
	g.Go(func() error {
		return api.Serve(ctx, agentsLn, d.agentsHandler(), serving, transport.MaxWait+30*time.Second, 10*time.Second, log, api.HTTP1Only(),
			api.TLSListener(func(l net.Listener, cfg *tls.Config) net.Listener { return transport.NewListener(l, cfg) }))
	})
	if s, ok := d.source.(*dir.Source); ok {
		g.Go(func() error {
			if err := s.Watch(ctx, d.trigger, log); err != nil {
				log.WarnContext(ctx, "cannot watch the fleet directory; polling only", "error", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// openPostgres opens the PostgreSQL store, its connection string read
// from store.postgres.dsn or dsnFile.
func openPostgres(ctx context.Context, pg *config.PostgresStore, log *slog.Logger) (*postgres.Store, error) {
	dsn := pg.DSN
	if pg.DSNFile != "" {
		data, err := os.ReadFile(pg.DSNFile)
		if err != nil {
			return nil, fmt.Errorf("read store.postgres.dsnFile: %w", err)
		}
		dsn = string(bytes.TrimSpace(data))
	}
	st, err := postgres.Open(ctx, dsn, postgres.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open the PostgreSQL store: %w", err)
	}
	return st, nil
}

// revisionCheck is what a git source's revisions must pass before they
// are planned: a history that goes on from the last revision applied (a
// force-push is refused until an operator accepts it), and, with
// source.git.verify, the commits' signatures.
func revisionCheck(cfg *config.Config, src sources.Source) (func(ctx context.Context, from, to string) error, error) {
	g, ok := src.(*git.Source)
	if !ok {
		return nil, nil
	}
	var v *signature.Verifier
	mode := signature.ModeOff
	if vc := cfg.Source.Git.Verify; vc != nil {
		var err error
		if mode, err = signature.ParseMode(vc.Mode); err != nil {
			return nil, fmt.Errorf("source.git.verify.mode: %w", err)
		}
		if v, err = signature.New(signature.Config{AllowedSigners: vc.AllowedSignersFile, GPGKeyring: vc.GPGKeyringFile}); err != nil {
			return nil, fmt.Errorf("source.git.verify: %w", err)
		}
	}
	return func(ctx context.Context, from, to string) error {
		_, err := g.Verify(ctx, v, mode, from, to)
		return err
	}, nil
}

func pollInterval(cfg *config.Config) time.Duration {
	if g := cfg.Source.Git; g != nil {
		return time.Duration(g.PollInterval)
	}
	return time.Duration(cfg.Source.Dir.PollInterval)
}

// openProviders opens the configured key providers.
func openProviders(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (controller.Providers, func(), error) {
	p := controller.Providers{Issuers: vault.Registry{}, Default: cfg.KeyProvider.Default}
	closers := []func(){}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if l := cfg.KeyProvider.Local; l != nil {
		var kek local.KEK
		var err error
		if l.KEKFile != "" {
			kek, err = local.LoadKEK(l.KEKFile)
		} else {
			kek, err = local.KEKFromEnv("")
		}
		if err != nil {
			return p, closeAll, fmt.Errorf("keyProvider.local: %w", err)
		}
		lp, err := local.New(ctx, l.Dir, kek, local.WithLogger(log))
		if err != nil {
			return p, closeAll, fmt.Errorf("keyProvider.local: %w", err)
		}
		p.Issuers["local"] = lp
		if p.Default == "local" {
			p.Keys = lp
		}
	}
	if v := cfg.KeyProvider.Vault; v != nil {
		hc := hashicorp.Config{Address: v.Address, Namespace: v.Namespace, CACert: v.CACert, PKIMount: v.PKIMount,
			Role: v.Role, RSARole: v.RSARole, TransitMount: v.TransitMount, TransitKey: v.TransitKey}
		if v.AppRole != nil {
			hc.AppRole = &hashicorp.AppRole{Mount: v.AppRole.Mount, RoleID: v.AppRole.RoleID, SecretIDFile: v.AppRole.SecretIDFile}
		} else {
			tok, err := os.ReadFile(v.TokenFile)
			if err != nil {
				return p, closeAll, fmt.Errorf("keyProvider.vault.tokenFile: %w", err)
			}
			hc.Token = vault.Secret(bytes.TrimSpace(tok))
		}
		c, err := hashicorp.New(ctx, hc, hashicorp.WithLogger(log), hashicorp.WithRegisterer(reg))
		if err != nil {
			return p, closeAll, fmt.Errorf("keyProvider.vault: %w", err)
		}
		closers = append(closers, func() { c.Close() })
		p.Issuers["vault"] = c
		if p.Default == "vault" {
			p.Keys = c
		}
	}
	return p, closeAll, nil
}

// openSource opens the fleet source and says which revision to read.
func openSource(ctx context.Context, cfg *config.Config, gf gitFlags, log *slog.Logger) (sources.Source, string, error) {
	if d := cfg.Source.Dir; d != nil {
		s, err := dir.New(d.Path)
		if err != nil {
			return nil, "", fmt.Errorf("source.dir: %w", err)
		}
		return s, "", nil
	}
	g := cfg.Source.Git
	gf.cacheDir = g.CacheDir
	opts, err := gf.options()
	if err != nil {
		return nil, "", err
	}
	if g.Path != "" {
		opts = append(opts, git.WithSubdir(g.Path))
	}
	s, err := git.Clone(ctx, g.URL, append(opts, git.WithLogger(log))...)
	if err != nil {
		return nil, "", fmt.Errorf("source.git: %w", err)
	}
	return s, g.Branch, nil
}

// servingTLS loads the daemon's certificate, or issues one from the
// default key provider; it writes the CA that agents and clients must
// trust beside the store and returns its path.
func servingTLS(ctx context.Context, cfg *config.Config, p controller.Providers) (*tls.Config, string, error) {
	caFile := filepath.Join(cfg.StateDir, "reconciler-ca.pem")
	if cfg.TLS.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("tls: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{pair}}, "(the CA of tls.certFile)", nil
	}
	iss, err := p.Issuers.Issuer(p.Default)
	if err != nil {
		return nil, "", fmt.Errorf("tls: issue the daemon's certificate: %w", err)
	}
	cert, err := iss.Issue(ctx, vault.CertificateRequest{Instance: "reconciler", Hosts: cfg.TLS.Hosts, TTL: 30 * 24 * time.Hour})
	if err != nil {
		return nil, "", fmt.Errorf("tls: issue the daemon's certificate from the %s provider (or set tls.certFile and tls.keyFile): %w", p.Default, err)
	}
	pair, err := tls.X509KeyPair(append(cert.CertPEM, cert.ChainPEM...), cert.Key.Bytes())
	if err != nil {
		return nil, "", fmt.Errorf("tls: %w", err)
	}
	if err := os.WriteFile(caFile, cert.ChainPEM, 0o644); err != nil {
		return nil, "", fmt.Errorf("tls: write the CA file: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}}, caFile, nil
}

// policyOptions are the fleet section's policy settings, as diff's flags
// set them.
func policyOptions(f config.Fleet) []policy.Option {
	opts := []policy.Option{policy.WithFleetNamespace(f.FleetNamespace)}
	if f.AllNamespaces {
		return append(opts, policy.WithAllNamespaces())
	}
	return append(opts, policy.WithNamespaces(f.Namespaces...))
}

// defaults are the built-in instance defaults with the configured default
// key provider for instances that name none.
func defaults(cfg *config.Config) specs.Defaults {
	d := specs.DefaultDefaults()
	d.Provider = cfg.KeyProvider.Default
	return d
}
