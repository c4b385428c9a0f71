package controller_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/transport"
	recapi "github.com/reconciler-dev/reconciler/reconciler/api"
	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/sources/dir"
	"github.com/reconciler-dev/reconciler/specs"
	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/hashicorp"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// BenchmarkRolloutThroughVault measures a rollout of a fresh fleet of
// BENCH_ROLLOUT instances (default 1,000; postgresql, ssl and
// rpcEncryption enabled) through the real Vault dev server, against a
// bare loop of the same Vault calls. Each iteration runs the rollout,
// then the bare loop and the provider loop, in an order that alternates:
//
//   - rollout: a fresh fleet directory, SQLite store, token directory and
//     agents' server, served on HTTPS as the daemon serves it (HTTP/1.1,
//     polls parked); the controller as the daemon wires it, with
//     the default concurrency (8) and hashicorp.Client as its issuer and
//     key wrapper; and one goroutine per instance playing its agent over
//     the real protocol (transport.Client: enroll with a one-time token,
//     long-poll sealed with the status as heartbeat, and report a desired
//     state applied: Active, verified, with the bundle's serial,
//     fingerprint and expiry). The agents install nothing and check
//     nothing. Timed from the controller's start to the last moment the
//     store came to hold every instance applied with nothing in flight
//     (it must stay so for a second); the controller's views must then
//     show every instance Active and verified.
//   - bare: the Vault calls the rollout made, instance by instance, and
//     nothing else, with bare github.com/hashicorp/vault/api calls under
//     an AppRole token of the same policy, over 8 goroutines: a transit
//     data key (the same path, context and size) then a PKI issue (the
//     same role and parameters as the rollout's requests), and for an
//     instance the rollout issued to twice, the second issue and the
//     revocation of the first certificate.
//   - provider: the same calls through hashicorp.Client, which splits the
//     provider's own cost from the controller's.
//
// The comparison is checked, not assumed: the rollout's provider is
// wrapped in a decorator that counts its calls per instance, and the
// loops make exactly those. Before the timed iterations a rollout and a
// bare loop of min(N, 100) instances run with Vault's file audit device
// on, and Vault must have logged the same requests for both, and what
// the decorator counted: nothing of the rollout's reaches Vault unseen.
// One data key and one issue per instance is the design; extra issues
// are reported (dup-issues), since they are work the bare loop repeats
// but a correct rollout would not make.
//
// Reported: rollout-s, bare-s and provider-s (medians over iterations),
// rollout/bare and provider/bare (medians of each iteration's ratio), and
// where the rollout's time goes: startup-s (controller start to its first
// Vault call: restore and the first plan), tail-s (its last Vault answer
// to the end), enroll-ms (mean per instance: the key stored to its
// agent's first sealed report, the agents' enrollment retries and round
// trips), deliver-ms (the generation stored to the agent's Active
// report: two round trips), confirm-ms (that report to the instance
// recorded applied: mostly its wait in the queue), store-ms/update and
// store-held-s (how long the store's one writer was held, commits
// included), syncs (reads of the fleet source, each planning the whole
// fleet unless nothing changed since the last plan), turns/instance
// (reconcile turns), and the CPU the Go process and Vault used in the
// rollout and in the bare loop. Each iteration is also logged, with the
// machine's load average: the figures mean little on a machine that
// something else keeps busy.
//
// An enrollment that comes before its instance has a key is held by the
// server until the key is there; one that fails all the same is retried
// after 5ms, doubling up to BENCH_AGENT_RETRY (default 200ms), with
// jitter, where the real agent waits 1s to a minute. Their heartbeat (the
// long-poll wait) is BENCH_HEARTBEAT (default transport.DefaultWait, the
// agent's default: 30s). New desired state wakes a held poll, so the
// heartbeat is not on the rollout's path, only on its CPU. The
// agents share one HTTP/1.1 transport whose connections are opened before
// the clock starts, and keep their state directories in /dev/shm where it
// exists: each agent stands for a host of its own, whose TLS handshake and
// disk writes are not the reconciler's. The SQLite store is on disk, in
// the test's temporary directory, as the daemon's is in its state
// directory; BENCH_STORE_DIR puts it elsewhere (/dev/shm: no fsync), to
// show what its commits cost.
//
//	RECONCILER_VAULT_BIN=... go test -run '^$' -bench RolloutThroughVault -benchtime 3x ./reconciler/controller
func BenchmarkRolloutThroughVault(b *testing.B) {
	n := envInt(b, "BENCH_ROLLOUT", 1000)
	rb := &rolloutBench{retry: envDuration(b, "BENCH_AGENT_RETRY", 200*time.Millisecond),
		heartbeat: envDuration(b, "BENCH_HEARTBEAT", transport.DefaultWait)}
	// Registered first, so it runs last: after Vault is killed, so the
	// connections of the clients to it have ended too.
	before := goleak.IgnoreCurrent()
	b.Cleanup(func() { goleak.VerifyNone(b, before) })
	ctx := b.Context()
	rb.ca = datastoretest.NewCA(b)
	cert := rb.ca.Issue(b, "reconciler", "127.0.0.1")
	pair, err := tls.X509KeyPair(append(cert.CertPEM, cert.ChainPEM...), cert.Key.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	rb.tls = &tls.Config{Certificates: []tls.Certificate{pair}}
	rb.vs = vaultservertest.Dev(b)
	rb.vaultPID = vaultPID(strings.TrimPrefix(rb.vs.Addr, "http://"))
	secretFile := filepath.Join(b.TempDir(), "secret-id")
	boot, err := hashicorp.Bootstrap(ctx, rb.vs.Client(), hashicorp.BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		b.Fatal(err)
	}
	appRole := &hashicorp.AppRole{RoleID: boot.RoleID, SecretIDFile: secretFile}
	if rb.prov, err = hashicorp.New(ctx, hashicorp.Config{Address: rb.vs.Addr, AppRole: appRole}); err != nil {
		b.Fatal(err)
	}
	defer rb.prov.Close()
	rb.bare = bareClient(b, rb.vs.Addr, appRole)
	defer rb.bare.CloneConfig().HttpClient.CloseIdleConnections()

	rb.calibrate(b, min(n, 100))

	var rs []rolloutResult
	var bares, provs []time.Duration
	var bareCPU []cpuUse
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := rb.rollout(b, i, n)
		var bare, prov time.Duration
		var bc cpuUse
		if i%2 == 0 {
			bare, bc = rb.bareLoop(b, r.calls)
			prov = rb.providerLoop(b, r.calls)
		} else {
			prov = rb.providerLoop(b, r.calls)
			bare, bc = rb.bareLoop(b, r.calls)
		}
		rs, bares, provs, bareCPU = append(rs, r), append(bares, bare), append(provs, prov), append(bareCPU, bc)
		t := r.calls.totals()
		b.Logf("iteration %d, N=%d: rollout %.2fs (startup %.2fs, Vault calls %.2fs, tail %.2fs; cpu: go %.2fs, vault %.2fs; %d syncs), "+
			"bare %.2fs (cpu: go %.2fs, vault %.2fs), provider %.2fs: rollout/bare %.2f; Vault calls %v; per instance: enroll %.1fms, "+
			"deliver %.1fms, confirm %.1fms, %.1f refused polls, %.1f reconcile turns, %.1f store updates of %.2fms (the writer held %.2fs in all); load average %s",
			i, n, r.elapsed.Seconds(), r.startup.Seconds(), r.vaultWindow.Seconds(), r.tail.Seconds(), r.cpu.self.Seconds(), r.cpu.vault.Seconds(),
			r.syncs, bare.Seconds(), bc.self.Seconds(), bc.vault.Seconds(), prov.Seconds(), float64(r.elapsed)/float64(bare), t,
			ms(r.enrollWait), ms(r.deliverWait), ms(r.confirmWait), float64(r.refused)/float64(n), float64(r.turns)/float64(n),
			float64(r.updates)/float64(n), ms(r.updateTime)/float64(max(r.updates, 1)), r.writerHeld.Seconds(), loadAverage())
	}
	b.StopTimer()
	med := func(f func(i int) float64) float64 {
		vs := make([]float64, len(rs))
		for i := range rs {
			vs[i] = f(i)
		}
		return medianFloat(vs)
	}
	b.ReportMetric(med(func(i int) float64 { return rs[i].elapsed.Seconds() }), "rollout-s")
	b.ReportMetric(med(func(i int) float64 { return bares[i].Seconds() }), "bare-s")
	b.ReportMetric(med(func(i int) float64 { return provs[i].Seconds() }), "provider-s")
	b.ReportMetric(med(func(i int) float64 { return float64(rs[i].elapsed) / float64(bares[i]) }), "rollout/bare")
	b.ReportMetric(med(func(i int) float64 { return float64(provs[i]) / float64(bares[i]) }), "provider/bare")
	b.ReportMetric(med(func(i int) float64 { return float64(rs[i].calls.totals()["Issue"] - n) }), "dup-issues")
	b.ReportMetric(med(func(i int) float64 { return rs[i].startup.Seconds() }), "startup-s")
	b.ReportMetric(med(func(i int) float64 { return rs[i].tail.Seconds() }), "tail-s")
	b.ReportMetric(med(func(i int) float64 { return ms(rs[i].enrollWait) }), "enroll-ms")
	b.ReportMetric(med(func(i int) float64 { return ms(rs[i].deliverWait) }), "deliver-ms")
	b.ReportMetric(med(func(i int) float64 { return ms(rs[i].confirmWait) }), "confirm-ms")
	b.ReportMetric(med(func(i int) float64 { return ms(rs[i].updateTime) / float64(max(rs[i].updates, 1)) }), "store-ms/update")
	b.ReportMetric(med(func(i int) float64 { return rs[i].writerHeld.Seconds() }), "store-held-s")
	b.ReportMetric(med(func(i int) float64 { return float64(rs[i].syncs) }), "syncs")
	b.ReportMetric(med(func(i int) float64 { return float64(rs[i].turns) / float64(n) }), "turns/instance")
	b.ReportMetric(med(func(i int) float64 { return rs[i].cpu.self.Seconds() }), "rollout-go-cpu-s")
	b.ReportMetric(med(func(i int) float64 { return bareCPU[i].self.Seconds() }), "bare-go-cpu-s")
	if rb.vaultPID != 0 {
		b.ReportMetric(med(func(i int) float64 { return rs[i].cpu.vault.Seconds() }), "rollout-vault-cpu-s")
		b.ReportMetric(med(func(i int) float64 { return bareCPU[i].vault.Seconds() }), "bare-vault-cpu-s")
	}
}

// rolloutBench is what the iterations share: one Vault, the provider the
// controller uses, and the bare client.
type rolloutBench struct {
	retry, heartbeat time.Duration
	vs               *vaultservertest.Server
	ca               *datastoretest.CA // the agents' listener's
	tls              *tls.Config
	vaultPID         int
	prov             *hashicorp.Client
	bare             *api.Client
	// shape is the certificate request the rollouts make (every instance
	// the same but for its name), for the loops to repeat.
	shape vault.CertificateRequest
}

// rolloutResult is one timed rollout.
type rolloutResult struct {
	elapsed                              time.Duration
	startup, vaultWindow, tail           time.Duration
	enrollWait, deliverWait, confirmWait time.Duration // means per instance
	refused                              int64         // polls that failed: enrollments before the instance had a key
	turns                                int64         // reconcile turns (store reads of one record)
	updates                              int64
	updateTime, writerHeld               time.Duration
	syncs                                int64
	cpu                                  cpuUse
	calls                                vaultCalls // what the loops repeat
}

// calibrate runs an untimed rollout and bare loop of n instances with
// Vault's audit log on and fails unless Vault logged the same requests
// for both, and those the rollout's decorator counted. It also records
// the request shape the loops repeat, and warms Vault up.
func (rb *rolloutBench) calibrate(b *testing.B, n int) {
	ctx := b.Context()
	admin := rb.vs.Client()
	log := filepath.Join(b.TempDir(), "audit.log")
	if err := admin.Sys().EnableAuditWithOptionsWithContext(ctx, "bench", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": log}}); err != nil {
		b.Fatalf("enable the audit log: %v", err)
	}
	offset := fileSize(b, log)
	r := rb.rollout(b, -1, n)
	rolloutCalls, offset := auditedRequests(b, log, offset)
	rb.bareLoop(b, r.calls)
	bareCalls, _ := auditedRequests(b, log, offset)
	if err := admin.Sys().DisableAuditWithContext(ctx, "bench"); err != nil {
		b.Fatalf("disable the audit log: %v", err)
	}
	counted := map[string]int{}
	for op, k := range r.calls.totals() {
		counted[map[string]string{"NewKey": "update transit/datakey/plaintext/reconciler",
			"Issue": "update pki/issue/" + roleOf(rb.shape), "Revoke": "update pki/revoke"}[op]] = k
	}
	if diff := cmp.Diff(counted, rolloutCalls); diff != "" {
		b.Fatalf("a rollout of %d instances: Vault's audit log against the provider calls counted (-counted +audited):\n%s", n, diff)
	}
	if diff := cmp.Diff(rolloutCalls, bareCalls); diff != "" {
		b.Fatalf("the bare loop does not make the rollout's Vault calls (-rollout +bare):\n%s", diff)
	}
	b.Logf("Vault's audit log, %d instances: the rollout and the bare loop each made %v", n, rolloutCalls)
}

// rollout runs one rollout of n instances (iteration i; -1 for the
// calibration) and returns its figures; everything it started is stopped
// when it returns.
func (rb *rolloutBench) rollout(b *testing.B, i, n int) rolloutResult {
	b.StopTimer()
	ctx := b.Context()
	work := b.TempDir()
	names := make([]string, n)
	for k := range names {
		names[k] = fmt.Sprintf("rollout-%05d", k)
		doc := fmt.Sprintf("apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n  name: %s\nspec:\n"+
			"  datastore: {type: postgresql, version: \"15\"}\n  hosts: [127.0.0.1]\n  ssl: enabled\n  rpcEncryption: enabled\n", names[k])
		p := filepath.Join(work, "fleet", "instances", names[k]+".yaml")
		if k == 0 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fleet, err := dir.New(filepath.Join(work, "fleet"))
	if err != nil {
		b.Fatal(err)
	}
	src := &countingSource{Source: fleet}
	storeDir := work
	if d := os.Getenv("BENCH_STORE_DIR"); d != "" {
		storeDir, err = os.MkdirTemp(d, "rollout-store-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(storeDir)
	}
	sq, err := sqlite.Open(ctx, filepath.Join(storeDir, "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer sq.Close()
	st := newWatchedStore(sq, n)
	tokens, err := transport.NewTokenDir(filepath.Join(work, "tokens"))
	if err != nil {
		b.Fatal(err)
	}
	agentDir := tmpfsDir(b)
	calls := newCountingVault(rb.prov)
	heard := &heardLog{seen: map[string]time.Time{}, active: map[string]time.Time{}}
	reg := prometheus.NewRegistry()
	var ctl *controller.Controller
	server := transport.NewServer(transport.WithTokens(tokens), transport.WithServerRegisterer(reg),
		transport.WithStatusHook(func(ctx context.Context, s agent.Status) {
			heard.note(s)
			ctl.AgentReported(ctx, s)
		}),
		transport.WithKeyPromotedHook(func(ctx context.Context, name string, v uint32) { ctl.KeyPromoted(ctx, name, v) }))
	defaults := specs.DefaultDefaults()
	defaults.Provider = specs.ProviderVault
	ctl = controller.New(controller.Config{
		Source: src, Instances: "instances", Policies: "policies", Defaults: defaults,
		Providers: controller.Providers{Issuers: vault.Registry{specs.ProviderVault: calls}, Default: specs.ProviderVault, Keys: calls},
		Store:     st, Agents: server, Poll: time.Hour, Resync: time.Hour,
	}, controller.WithRegisterer(reg))

	// Profile labels: phase, and side (whose goroutines: the agents', the
	// controller's, or the agents' server's, the status hook included).
	phase := "rollout"
	if i < 0 {
		phase = "calibration"
	}
	var agentsURL string
	var stopServing func()
	pprof.Do(ctx, pprof.Labels("phase", phase, "side", "agents-server"), func(ctx context.Context) {
		agentsURL, stopServing = rb.serveAgents(b, ctx, server.Handler()) // its goroutines inherit the labels
	})
	defer stopServing()
	roots := rb.ca.Pool(b)
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1: a connection per poll in flight
		MaxIdleConns:        n + 16,
		MaxIdleConnsPerHost: n + 16,
		IdleConnTimeout:     2 * transport.MaxWait,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	defer hc.CloseIdleConnections()
	clients := make([]*transport.Client, n)
	for k, name := range names {
		state := filepath.Join(agentDir, name)
		os.MkdirAll(state, 0o700)
		token, err := tokens.Issue(name)
		if err != nil {
			b.Fatal(err)
		}
		tokenFile := filepath.Join(state, "enrollment-token")
		if err := os.WriteFile(tokenFile, transport.FormatToken(token), 0o600); err != nil {
			b.Fatal(err)
		}
		if clients[k], err = transport.NewClient(transport.ClientConfig{Instance: name, URL: agentsURL, RootCAs: roots,
			StateDir: filepath.Join(state, "state"), TokenFile: tokenFile, Wait: rb.heartbeat}, transport.WithHTTPClient(hc)); err != nil {
			b.Fatal(err)
		}
	}
	warmUp(b, hc, agentsURL, n)

	var refused atomic.Int64
	agentsCtx, stopAgents := context.WithCancel(ctx)
	var agents sync.WaitGroup
	defer func() { stopAgents(); agents.Wait() }()
	runCtx, stopController := context.WithCancel(ctx)
	defer stopController()
	ran := make(chan error, 1)
	var cpu0 cpuUse
	rb.sample(&cpu0)
	b.StartTimer()
	start := time.Now()
	pprof.Do(agentsCtx, pprof.Labels("phase", phase, "side", "agent"), func(ctx context.Context) {
		for k, c := range clients {
			agents.Add(1)
			go func() {
				defer agents.Done()
				playAgent(ctx, names[k], c, rb.retry, &refused)
			}()
		}
	})
	pprof.Do(runCtx, pprof.Labels("phase", phase, "side", "controller"), func(ctx context.Context) {
		go func() { ran <- ctl.Run(ctx) }()
	})
	end, cpu1, ok := st.settle(time.Second, 5*time.Minute+time.Duration(n)*50*time.Millisecond, rb.sample)
	b.StopTimer()
	stopController()
	if err := <-ran; err != nil {
		b.Fatalf("controller Run: %v", err)
	}
	if !ok {
		b.Fatalf("rollout of %d instances: not settled in time: %d applied; phases %v; Vault calls %v",
			n, st.settledCount(), phaseCounts(ctl), calls.totals())
	}
	stopAgents()
	agents.Wait()

	got := calls.totals()
	var unsettled []string
	for _, v := range ctl.Instances() {
		if v.Phase != agent.Active || !v.SSL || !v.Verified {
			unsettled = append(unsettled, fmt.Sprintf("%s: %s (ssl %v, verified %v, generation %d): %s", v.Name, v.Phase, v.SSL, v.Verified, v.Generation, v.Message))
		}
	}
	if len(unsettled) > 0 {
		b.Fatalf("rollout of %d instances: every one was recorded applied, but %d do not show Active and verified; Vault calls %v:\n%s",
			n, len(unsettled), got, strings.Join(unsettled, "\n"))
	}
	perInstance := calls.perInstance()
	for op := range got {
		if op != "NewKey" && op != "Issue" && op != "Revoke" {
			b.Fatalf("the rollout made provider calls the loops do not repeat: %v", got)
		}
	}
	for _, name := range names {
		if c := perInstance[name]; c.keys != 1 || c.issues < 1 || c.revokes >= c.issues {
			b.Fatalf("the rollout's provider calls for %s: %d data keys, %d issues, %d revocations; want one data key, "+
				"at least one issue, and a revocation at most for each certificate replaced", name, c.keys, c.issues, c.revokes)
		}
	}
	rb.noteShape(b, calls.requests(), names)

	r := rolloutResult{elapsed: end.Sub(start), refused: refused.Load(), turns: st.gets.Load(), updates: st.updates.Load(),
		updateTime: time.Duration(st.updateNanos.Load()), writerHeld: time.Duration(st.heldNanos.Load()), syncs: src.snapshots.Load(), cpu: cpu1.minus(cpu0), calls: perInstance}
	first, last := calls.window()
	r.startup, r.vaultWindow, r.tail = first.Sub(start), last.Sub(first), end.Sub(last)
	st.mu.Lock()
	heard.mu.Lock()
	r.enrollWait = meanGap(st.keyed, heard.seen)
	r.deliverWait = meanGap(st.published, heard.active)
	r.confirmWait = meanGap(heard.active, st.applied)
	heard.mu.Unlock()
	st.mu.Unlock()
	b.StartTimer()
	return r
}

// serveAgents serves h on a loopback port as the daemon serves its agents'
// listener (api.Serve, HTTP/1.1, through transport.Listener, so polls
// park), with a certificate of the bench's CA, and returns its URL and
// what stops it.
func (rb *rolloutBench) serveAgents(b *testing.B, ctx context.Context, h http.Handler) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- recapi.Serve(ctx, ln, h, rb.tls, transport.MaxWait+30*time.Second, time.Second, nil, recapi.HTTP1Only(),
			recapi.TLSListener(func(l net.Listener, cfg *tls.Config) net.Listener { return transport.NewListener(l, cfg) }))
	}()
	return "https://" + ln.Addr().String(), func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serve the agents: %v", err)
		}
	}
}

// playAgent is an agent without a datastore (agent.Agent.Run's loop):
// poll with the status, and report a newer desired state applied. A
// failed poll (before the instance has its key, the enrollment is
// refused) is retried after 5ms, doubling up to retry, with jitter.
func playAgent(ctx context.Context, name string, c *transport.Client, retry time.Duration, refused *atomic.Int64) {
	status := agent.Status{Instance: name, Phase: agent.Pending}
	wait := 5 * time.Millisecond
	for {
		status.ReportedAt = time.Now()
		d, err := c.Poll(ctx, status)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			refused.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait/2 + rand.N(wait/2+1)):
			}
			wait = min(2*wait, retry)
			continue
		}
		if d != nil && d.Generation > status.Generation {
			status = appliedStatus(name, d)
		}
	}
}

// appliedStatus is what agent.Agent reports once the installer and the
// TLS check succeeded: Active, the bundle's certificate verified.
func appliedStatus(name string, d *agent.Desired) agent.Status {
	s := agent.Status{Instance: name, Phase: agent.Active, Generation: d.Generation}
	if !d.SSL {
		return s
	}
	if d.Bundle == nil {
		s.Phase, s.Message = agent.Error, "no certificate in the desired state: "+d.Withheld
		return s
	}
	s.SSL, s.Verified, s.Serial, s.Fingerprint = true, true, d.Bundle.Serial, d.Bundle.Fingerprint
	if leaf, err := vault.ParseLeaf(d.Bundle.CertPEM); err == nil {
		s.NotAfter = leaf.NotAfter.UTC()
	}
	return s
}

// warmUp opens the agents' connections before the clock starts: n
// requests at once, refused (no such instance), leave about n idle
// connections in hc's pool. The server's side of their TLS handshakes
// runs in its goroutines, so it carries the rollout's profile labels
// though it is not timed: leave it out (pprof -ignore=serverHandshake).
func warmUp(b *testing.B, hc *http.Client, url string, n int) {
	var g errgroup.Group
	for range n {
		g.Go(func() error {
			resp, err := hc.Post(url+"/v1/agents/warm-up/enroll", "application/json", strings.NewReader("{}"))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("open the agents' connections: %v", err)
	}
}

// bareLoop makes the calls of a rollout with bare vault/api calls over 8
// goroutines, and returns how long that took and the CPU it cost.
func (rb *rolloutBench) bareLoop(b *testing.B, calls vaultCalls) (time.Duration, cpuUse) {
	ctx := b.Context()
	role := roleOf(rb.shape)
	var dns, ips []string
	for _, h := range rb.shape.Hosts {
		if net.ParseIP(h) != nil {
			ips = append(ips, h)
		} else {
			dns = append(dns, h)
		}
	}
	var c0, c1 cpuUse
	rb.sample(&c0)
	start := time.Now()
	err := loop(ctx, calls, pprof.Labels("phase", "bare"), func(ctx context.Context, name string, c instanceCalls) error {
		for range c.keys {
			key, err := rb.bare.Logical().WriteWithContext(ctx, "transit/datakey/plaintext/reconciler", map[string]any{
				"context": base64.StdEncoding.EncodeToString([]byte("reconciler/rpc/" + name)), "bits": 256})
			if err != nil {
				return err
			}
			if key == nil || key.Data["plaintext"] == nil || key.Data["ciphertext"] == nil {
				return fmt.Errorf("data key for %s: no key in the answer", name)
			}
		}
		var serials []any
		for range c.issues {
			cert, err := rb.bare.Logical().WriteWithContext(ctx, "pki/issue/"+role, map[string]any{
				"common_name": name, "alt_names": strings.Join(dns, ","), "ip_sans": strings.Join(ips, ","),
				"ttl": rb.shape.TTL.String(), "private_key_format": "pkcs8", "exclude_cn_from_sans": true})
			if err != nil {
				return err
			}
			if cert == nil || cert.Data["certificate"] == nil || cert.Data["private_key"] == nil {
				return fmt.Errorf("issue for %s: no certificate in the answer", name)
			}
			serials = append(serials, cert.Data["serial_number"])
		}
		for k := range c.revokes {
			if _, err := rb.bare.Logical().WriteWithContext(ctx, "pki/revoke", map[string]any{"serial_number": serials[k]}); err != nil {
				return err
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	rb.sample(&c1)
	if err != nil {
		b.Fatalf("bare loop: %v", err)
	}
	return elapsed, c1.minus(c0)
}

// providerLoop makes the same calls through hashicorp.Client.
func (rb *rolloutBench) providerLoop(b *testing.B, calls vaultCalls) time.Duration {
	start := time.Now()
	err := loop(b.Context(), calls, pprof.Labels("phase", "provider"), func(ctx context.Context, name string, c instanceCalls) error {
		for range c.keys {
			if _, err := rb.prov.NewKey(ctx, name); err != nil {
				return err
			}
		}
		req := rb.shape
		req.Instance = name
		var serials []string
		for range c.issues {
			cert, err := rb.prov.Issue(ctx, req)
			if err != nil {
				return err
			}
			serials = append(serials, cert.Serial)
		}
		for k := range c.revokes {
			if err := rb.prov.Revoke(ctx, serials[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("provider loop: %v", err)
	}
	return time.Since(start)
}

// loop runs item for every instance of calls over the controller's
// default concurrency, 8 goroutines.
func loop(ctx context.Context, calls vaultCalls, labels pprof.LabelSet, item func(context.Context, string, instanceCalls) error) error {
	names := slices.Sorted(maps.Keys(calls))
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	pprof.Do(ctx, labels, func(ctx context.Context) {
		for range 8 {
			g.Go(func() error {
				for k := next.Add(1) - 1; k < int64(len(names)); k = next.Add(1) - 1 {
					if err := item(ctx, names[k], calls[names[k]]); err != nil {
						return err
					}
				}
				return nil
			})
		}
	})
	return g.Wait()
}

// noteShape checks that the rollout's certificate requests were alike
// but for the instance, one or more for each, and keeps that request for
// the loops.
func (rb *rolloutBench) noteShape(b *testing.B, reqs []vault.CertificateRequest, names []string) {
	var got []string
	for _, r := range reqs {
		got = append(got, r.Instance)
		r.Instance = ""
		if rb.shape.TTL == 0 {
			rb.shape = r
		}
		if diff := cmp.Diff(rb.shape, r); diff != "" {
			b.Fatalf("the rollout's certificate requests differ (-first +this):\n%s", diff)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(names, slices.Compact(got)); diff != "" {
		b.Fatalf("the rollout's certificate requests are not for every instance (-want +got):\n%s", diff)
	}
}

// roleOf is the PKI role hashicorp.Client issues req with.
func roleOf(req vault.CertificateRequest) string {
	if req.KeyType == vault.KeyTypeRSA {
		return "reconciler-rsa"
	}
	return "reconciler"
}

// bareClient is a vault/api client configured as hashicorp.New configures
// its own, logged in with the same AppRole, so the token's policy (what
// Vault's ACL checks) is the same.
func bareClient(b *testing.B, addr string, ar *hashicorp.AppRole) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Timeout, cfg.MaxRetries = addr, 30*time.Second, 0
	cfg.HttpClient.Transport.(*http.Transport).MaxIdleConnsPerHost = 32
	c, err := api.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c.ClearToken()
	secretID, err := os.ReadFile(ar.SecretIDFile)
	if err != nil {
		b.Fatal(err)
	}
	login, err := c.Logical().WriteWithContext(b.Context(), "auth/approle/login", map[string]any{
		"role_id": ar.RoleID, "secret_id": strings.TrimSpace(string(secretID))})
	if err != nil || login == nil || login.Auth == nil {
		b.Fatalf("AppRole login for the bare loop: %v", err)
	}
	c.SetToken(login.Auth.ClientToken)
	return c
}
