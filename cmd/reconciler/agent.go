package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/specs"
)

func newAgentCommand() *cobra.Command {
	var (
		configFile string
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the guest agent on a database host",
		Long: `Run the guest agent for one database instance. It long-polls the
reconciler for the instance's desired state over HTTPS, every message sealed
with the instance's RPC key (AES-256-GCM), installs the certificate, key and
CA files and the datastore's own TLS configuration, reloads the datastore
where it can (or reports RestartRequired), and proves with a TLS handshake
in the datastore's protocol that the issued certificate is served.

A new agent has no key: its config names a one-time enrollment token file,
which 'reconciler agent bootstrap NAME' writes. The key is sealed to a key
pair the agent makes, so it never crosses the wire in clear.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return errors.New("agent: --config FILE is required (write one with reconciler agent bootstrap NAME)")
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			return runAgent(cmd.Context(), configFile, log)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the agent's configuration file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(newAgentBootstrapCommand())
	return cmd
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// runAgent wires the agent from its configuration and runs it until ctx
// ends.
func runAgent(ctx context.Context, configFile string, log *slog.Logger) error {
	cfg, err := agent.LoadConfig(configFile)
	if err != nil {
		return err
	}
	log = log.With("instance", cfg.Instance)
	var roots *x509.CertPool
	if cfg.Reconciler.CAFile != "" {
		pem, err := os.ReadFile(cfg.Reconciler.CAFile)
		if err != nil {
			return fmt.Errorf("read reconciler.caFile: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("read reconciler.caFile %s: no PEM certificate in it", cfg.Reconciler.CAFile)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	client, err := transport.NewClient(transport.ClientConfig{
		Instance: cfg.Instance, URL: cfg.Reconciler.URL, Fallbacks: cfg.Reconciler.Fallbacks, RootCAs: roots, StateDir: cfg.StateDir,
		TokenFile: cfg.EnrollmentTokenFile, Wait: time.Duration(cfg.Heartbeat), AllowPlaintext: cfg.AllowPlaintext,
	}, transport.WithClientLogger(log), transport.WithClientRegisterer(reg))
	if err != nil {
		return err
	}
	inst, err := agent.NewInstaller(cfg.Datastore, log)
	if err != nil {
		return err
	}
	a := agent.New(cfg, client, inst, agent.NewVerifier(cfg.Datastore), agent.WithLogger(log), agent.WithRegisterer(reg))
	if cfg.MetricsAddress != "" {
		stop, err := serveMetrics(ctx, cfg.MetricsAddress, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.InfoContext(ctx, "agent started", "reconciler", cfg.Reconciler.URL, "datastore", cfg.Datastore.Type, "key_version", client.KeyVersion())
	return a.Run(ctx)
}

// serveMetrics serves reg on http://addr/metrics until stop is called.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.ErrorContext(ctx, "metrics listener stopped", "error", err)
		}
	}()
	log.InfoContext(ctx, "serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}, nil
}

// datastoreDefaults are Debian's packages' paths, ports and users, the
// starting point of a bootstrapped config.
var datastoreDefaults = map[string]agent.DatastoreConfig{
	specs.PostgreSQL: {Port: 5432, User: "postgres", ConfigDir: "/etc/postgresql/15/main/conf.d", DataDir: "/var/lib/postgresql/15/main",
		AdminDSN: "host=/var/run/postgresql user=postgres dbname=postgres"},
	specs.MySQL:     {Port: 3306, User: "mysql", ConfigDir: "/etc/mysql/conf.d", AdminDSN: "root@unix(/run/mysqld/mysqld.sock)/"},
	specs.MariaDB:   {Port: 3306, User: "mysql", ConfigDir: "/etc/mysql/mariadb.conf.d", AdminDSN: "root@unix(/run/mysqld/mysqld.sock)/"},
	specs.MongoDB:   {Port: 27017, User: "mongodb", ConfigDir: "/etc", TLSDir: "/etc/mongodb-tls"},
	specs.Cassandra: {Port: 9042, User: "cassandra", ConfigDir: "/etc/cassandra"},
	// Manticore's HTTPS listener is a port of its own: 9308 is usually
	// searchd's plain HTTP one, which the installer will not take over.
	specs.Manticore: {Port: 9443, User: "manticore", ConfigDir: "/etc/manticoresearch"},
}

func newAgentBootstrapCommand() *cobra.Command {
	var (
		o         agent.DatastoreConfig
		url       string
		fallbacks []string
		caFile    string
		tokens    string
		out       string
		hostDir   string
		state     string
	)
	cmd := &cobra.Command{
		Use:   "bootstrap NAME --datastore TYPE --url URL --ca FILE --token-dir DIR --out DIR",
		Short: "Write the configuration and one-time enrollment token for a new agent host",
		Long: `Write what a new database host needs to run 'reconciler agent' for instance
NAME, into --out:

  agent.yaml         the agent's configuration, checked as the agent reads it
  enrollment-token   a one-time token (0600): the agent trades it for its RPC
                     key on first contact, and the reconciler then forgets it
  ca.pem             the CA that verifies the reconciler's HTTPS endpoint

and the reconciler's copy of the token into --token-dir. Copy the --out files
to --host-dir on the host (default /etc/reconciler-agent) over a channel you
trust, such as your configuration management; the token works once. Running
it again issues a new token and makes the old one useless.

Datastore paths, port and user start from Debian's packages and can be set
with the flags below; edit agent.yaml for anything else.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if problem, fix := specs.CheckName(name); problem != "" {
				return fmt.Errorf("agent bootstrap: instance %s; %s", problem, fix)
			}
			def, ok := datastoreDefaults[o.Type]
			if !ok {
				return fmt.Errorf("agent bootstrap: --datastore %q is not one of mysql, mariadb, postgresql, mongodb, cassandra, manticore", o.Type)
			}
			if url == "" || caFile == "" || tokens == "" || out == "" {
				return errors.New("agent bootstrap: --url, --ca, --token-dir and --out are all required")
			}
			ds := mergeDatastore(def, o, cmd)
			ca, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("agent bootstrap: read --ca: %w", err)
			}
			if !x509.NewCertPool().AppendCertsFromPEM(ca) {
				return fmt.Errorf("agent bootstrap: --ca %s holds no PEM certificate", caFile)
			}
			cfg := agent.Config{
				Instance:            name,
				Reconciler:          agent.Endpoint{URL: url, CAFile: filepath.Join(hostDir, "ca.pem"), Fallbacks: fallbacks},
				StateDir:            state,
				EnrollmentTokenFile: filepath.Join(hostDir, "enrollment-token"),
				Datastore:           ds,
			}
			var buf bytes.Buffer
			buf.WriteString("# reconciler agent for instance " + name + ", written by reconciler agent bootstrap.\n")
			enc := yaml.NewEncoder(&buf)
			enc.SetIndent(2)
			if err := enc.Encode(cfg); err != nil {
				return fmt.Errorf("agent bootstrap: %w", err)
			}
			data := buf.Bytes()
			if _, err := agent.ParseConfig("agent.yaml", data); err != nil {
				return fmt.Errorf("agent bootstrap: the config would not load (fix the flags): %w", err)
			}
			dir, err := transport.NewTokenDir(tokens)
			if err != nil {
				return fmt.Errorf("agent bootstrap: %w", err)
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return fmt.Errorf("agent bootstrap: %w", err)
			}
			token, err := rpc.NewBootstrapToken()
			if err != nil {
				return fmt.Errorf("agent bootstrap: %w", err)
			}
			// The host's files first: if --out is not empty nothing is
			// written, and the reconciler keeps any token it had.
			for _, f := range []struct {
				name string
				data []byte
				mode os.FileMode
			}{
				{"agent.yaml", data, 0o600}, // adminDSN may hold a password
				{"ca.pem", ca, 0o644},
				{"enrollment-token", transport.FormatToken(token), 0o600},
			} {
				if err := writeNew(filepath.Join(out, f.name), f.data, f.mode); err != nil {
					return fmt.Errorf("agent bootstrap: %w", err)
				}
			}
			if err := dir.Put(name, token); err != nil {
				return fmt.Errorf("agent bootstrap: %w", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Wrote %s/{agent.yaml,ca.pem,enrollment-token} for instance %s.\n", out, name)
			fmt.Fprintf(w, "Copy them to %s on the host, then run:\n  reconciler agent --config %s\n",
				hostDir, filepath.Join(hostDir, "agent.yaml"))
			fmt.Fprintf(w, "The token works once; the agent removes its copy after enrolling.\n")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Type, "datastore", "", "mysql, mariadb, postgresql, mongodb, cassandra or manticore")
	f.StringVar(&url, "url", "", "the reconciler's agent endpoint, https://host:port")
	f.StringArrayVar(&fallbacks, "fallback-url", nil, "another replica's agent endpoint, tried when --url cannot be reached; repeatable")
	f.StringVar(&caFile, "ca", "", "PEM CA that verifies the reconciler's endpoint")
	f.StringVar(&tokens, "token-dir", "", "the reconciler's enrollment token directory")
	f.StringVar(&out, "out", "", "directory to write the host's files into")
	f.StringVar(&hostDir, "host-dir", "/etc/reconciler-agent", "where the files will live on the host")
	f.StringVar(&state, "state-dir", "/var/lib/reconciler-agent", "the agent's state directory on the host")
	f.StringVar(&o.Version, "version", "", "the datastore's version, such as 15 or 8.0")
	f.StringVar(&o.Host, "host", "", "the name or address clients use (default: the instance name); the certificate must cover it")
	f.IntVar(&o.Port, "port", 0, "the datastore's TLS port (default: the datastore's usual port)")
	f.StringVar(&o.ConfigDir, "config-dir", "", "where the agent writes TLS files and configuration")
	f.StringVar(&o.DataDir, "data-dir", "", "PostgreSQL's data directory")
	f.StringVar(&o.TLSDir, "tls-dir", "", "where MongoDB, Cassandra and Manticore keep the key and CA files (default: --config-dir)")
	f.StringVar(&o.User, "user", "", "the user the datastore runs as, who must read the key")
	f.StringVar(&o.AdminDSN, "admin-dsn", "", "how the agent connects as an administrator to reload TLS")
	f.StringSliceVar(&o.RestartCommand, "restart-command", nil, "argv that restarts the datastore, comma separated")
	f.BoolVar(&o.AllowRestart, "allow-restart", false, "let the agent restart the datastore when TLS cannot be reloaded")
	return cmd
}

// mergeDatastore overlays the flags that were set on the datastore's
// defaults.
func mergeDatastore(def, o agent.DatastoreConfig, cmd *cobra.Command) agent.DatastoreConfig {
	ds := def
	ds.Type, ds.Version, ds.AllowRestart = o.Type, o.Version, o.AllowRestart
	if ds.Type == specs.PostgreSQL && o.Version != "" {
		ds.ConfigDir = strings.ReplaceAll(def.ConfigDir, "/15/", "/"+o.Version+"/")
		ds.DataDir = strings.ReplaceAll(def.DataDir, "/15/", "/"+o.Version+"/")
	}
	set := cmd.Flags().Changed
	for _, f := range []struct {
		flag     string
		dst, src *string
	}{
		{"host", &ds.Host, &o.Host}, {"config-dir", &ds.ConfigDir, &o.ConfigDir}, {"data-dir", &ds.DataDir, &o.DataDir},
		{"user", &ds.User, &o.User}, {"admin-dsn", &ds.AdminDSN, &o.AdminDSN},
	} {
		if set(f.flag) {
			*f.dst = *f.src
		}
	}
	if set("config-dir") && !set("tls-dir") {
		ds.TLSDir = "" // the installer keeps its files beside the configuration
	}
	if set("tls-dir") {
		ds.TLSDir = o.TLSDir
	}
	if set("port") {
		ds.Port = o.Port
	}
	if set("restart-command") {
		ds.RestartCommand = o.RestartCommand
	}
	if ds.Host == "" {
		ds.Host = cmd.Flags().Arg(0)
	}
	return ds
}

// writeNew writes a file that must not exist yet, so a second bootstrap
// into the same directory cannot silently mix two tokens.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w (choose an empty --out directory)", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
