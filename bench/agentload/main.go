// Command agentload plays a fleet of guest agents against a running
// `reconciler run`, for bench/agents.sh: N goroutines, each with the
// real agent/transport.Client, so every agent enrolls with its one-time
// token, then long-polls sealed with its status as the heartbeat, takes
// the desired state and reports it applied (Active; for SSL, the issued
// certificate verified) without a datastore. What it measures is the
// reconciler; agentload's own CPU is measured beside it, to show the
// load was not starved.
//
// Usage:
//
//	agentload fleet -n N [-ssl enabled|disabled] DIR
//	agentload run -n N -url https://HOST:PORT -ca FILE -token-dir DIR -work DIR [-heartbeat 30s] [-ramp 30s] [-stats FILE] [-shared-transport]
//	agentload probe -api https://HOST:PORT -ca FILE -token FILE [-seen 75s] [-metrics-only]
//
// fleet writes N instances (agent-00000 ...) with rpcEncryption enabled,
// a policy and DIR/fleet.json. run issues each agent's token into the
// reconciler's token directory and the agent's token file, as
// `reconciler agent bootstrap` does, then runs the agents until it is
// interrupted, writing a Snapshot to -stats every second. probe prints,
// as one JSON object, what the reconciler's API and /metrics say about
// the agents (a Probe).
//
// By default every agent has the HTTP transport a real agent builds: its
// own TLS connection, HTTP/2, so the reconciler holds N connections as
// it would with N hosts. -shared-transport makes them share one
// transport (HTTP/1.1, still a connection per poll in flight), which
// costs agentload less.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reconciler-dev/reconciler/agent/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentload: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage:
  agentload fleet -n N [-ssl enabled|disabled] DIR
  agentload run -n N -url URL -ca FILE -token-dir DIR -work DIR [flags]
  agentload probe -api URL -ca FILE -token FILE [-seen 75s] [-metrics-only]`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "fleet":
		return runFleet(args[1:])
	case "run":
		return runLoad(ctx, args[1:])
	case "probe":
		return runProbe(ctx, args[1:])
	}
	fmt.Fprintln(os.Stderr, usage)
	return flag.ErrHelp
}

func runFleet(args []string) error {
	fs := flag.NewFlagSet("agentload fleet", flag.ContinueOnError)
	n := fs.Int("n", 1000, "number of instances")
	ssl := fs.String("ssl", "disabled", "spec.ssl of every instance: enabled or disabled")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *n < 1 {
		fmt.Fprintln(os.Stderr, usage)
		return flag.ErrHelp
	}
	st, err := writeFleet(fs.Arg(0), *n, *ssl)
	if err != nil {
		return err
	}
	fmt.Printf("agentload: wrote %d instances (ssl %s, rpcEncryption enabled) into %s\n", st.Instances, st.SSL, fs.Arg(0))
	return nil
}

func runLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agentload run", flag.ContinueOnError)
	var cfg Config
	var caFile, stats string
	fs.IntVar(&cfg.Agents, "n", 1000, "number of agents, for instances agent-00000 on")
	fs.StringVar(&cfg.URL, "url", "", "the reconciler's agent endpoint, https://host:port")
	fs.StringVar(&caFile, "ca", "", "the CA that verifies the reconciler (its reconciler-ca.pem)")
	fs.StringVar(&cfg.TokenDir, "token-dir", "", "the reconciler's enrollment token directory")
	fs.StringVar(&cfg.WorkDir, "work", "", "directory for the agents' state directories and token files")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", transport.DefaultWait, "the agents' heartbeat: how long the reconciler may hold a poll")
	fs.DurationVar(&cfg.Ramp, "ramp", transport.DefaultWait, "start the agents evenly over this long")
	fs.BoolVar(&cfg.SharedTransport, "shared-transport", false, "one HTTP/1.1 transport for every agent instead of a real agent's own")
	fs.StringVar(&stats, "stats", "", "file that receives a JSON snapshot every second")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.URL == "" || caFile == "" || cfg.TokenDir == "" || cfg.WorkDir == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, usage)
		return flag.ErrHelp
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	roots, err := loadRoots(caFile)
	if err != nil {
		return err
	}
	cfg.RootCAs = roots
	l, err := NewLoad(cfg, log)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "issuing enrollment tokens", "agents", cfg.Agents, "token_dir", cfg.TokenDir)
	if err := l.Prepare(ctx); err != nil {
		return err
	}
	log.InfoContext(ctx, "starting agents", "agents", cfg.Agents, "url", cfg.URL, "heartbeat", cfg.Heartbeat,
		"ramp", cfg.Ramp, "shared_transport", cfg.SharedTransport)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.Run(ctx) })
	g.Go(func() error { return l.Report(ctx, stats, time.Second, log) })
	return g.Wait()
}

func runProbe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agentload probe", flag.ContinueOnError)
	api := fs.String("api", "", "the reconciler's API, https://host:port")
	caFile := fs.String("ca", "", "the CA that verifies the reconciler")
	tokenFile := fs.String("token", "", "a file holding an admin API token")
	seen := fs.Duration("seen", 75*time.Second, "an agent counts as seen if it reported within this long")
	metricsOnly := fs.Bool("metrics-only", false, "read /metrics only, not /v1/instances")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *api == "" || *caFile == "" || (*tokenFile == "" && !*metricsOnly) || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, usage)
		return flag.ErrHelp
	}
	roots, err := loadRoots(*caFile)
	if err != nil {
		return err
	}
	token := ""
	if *tokenFile != "" {
		data, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("read API token: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	p, err := newProber(*api, roots, token, *seen).probe(ctx, *metricsOnly)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode probe: %w", err)
	}
	fmt.Println(string(out))
	return nil
}

func loadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA %s: no PEM certificate in it", file)
	}
	return roots, nil
}
