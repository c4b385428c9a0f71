package controller_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/hashicorp"
)

// What BenchmarkRolloutThroughVault observes a rollout with: decorators
// of the provider, the source and the store, the agents' reports, Vault's
// audit log, and the CPU this process and Vault use.

// instanceCalls are the provider calls made for one instance.
type instanceCalls struct{ keys, issues, revokes int }

// vaultCalls are a rollout's provider calls, by instance.
type vaultCalls map[string]instanceCalls

// totals counts the calls by provider method, leaving out those never made.
func (v vaultCalls) totals() map[string]int {
	out := map[string]int{}
	for _, c := range v {
		for op, k := range map[string]int{"NewKey": c.keys, "Issue": c.issues, "Revoke": c.revokes} {
			if k > 0 {
				out[op] += k
			}
		}
	}
	return out
}

// countingVault is the Vault provider, counting every call by instance
// (a revocation by the instance its serial was issued to), and noting
// when the first began and the last ended. Calls the loops cannot repeat
// (CAChain, Unwrap, Rewrap, or a serial it did not issue) are counted
// under "other" and fail the rollout.
type countingVault struct {
	p *hashicorp.Client

	mu          sync.Mutex
	calls       map[string]instanceCalls
	other       map[string]int
	serials     map[string]string // issued serial: instance
	reqs        []vault.CertificateRequest
	first, last time.Time
}

var (
	_ vault.Issuer     = (*countingVault)(nil)
	_ vault.KeyWrapper = (*countingVault)(nil)
)

func newCountingVault(p *hashicorp.Client) *countingVault {
	return &countingVault{p: p, calls: map[string]instanceCalls{}, other: map[string]int{}, serials: map[string]string{}}
}

// note counts a call that began at start, for instance (or, with
// instance "", under op in other).
func (c *countingVault) note(op, instance string, start time.Time, count func(*instanceCalls)) {
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if instance == "" {
		c.other[op]++
	} else {
		ic := c.calls[instance]
		count(&ic)
		c.calls[instance] = ic
	}
	if c.first.IsZero() || start.Before(c.first) {
		c.first = start
	}
	if end.After(c.last) {
		c.last = end
	}
}

func (c *countingVault) Issue(ctx context.Context, req vault.CertificateRequest) (*vault.Certificate, error) {
	start := time.Now()
	cert, err := c.p.Issue(ctx, req)
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	if err == nil {
		c.serials[cert.Serial] = req.Instance
	}
	c.mu.Unlock()
	c.note("Issue", req.Instance, start, func(ic *instanceCalls) { ic.issues++ })
	return cert, err
}

func (c *countingVault) Revoke(ctx context.Context, serial string) error {
	start := time.Now()
	err := c.p.Revoke(ctx, serial)
	c.mu.Lock()
	instance := c.serials[serial]
	c.mu.Unlock()
	c.note("Revoke", instance, start, func(ic *instanceCalls) { ic.revokes++ })
	return err
}

func (c *countingVault) CAChain(ctx context.Context) ([]byte, error) {
	defer c.note("CAChain", "", time.Now(), nil)
	return c.p.CAChain(ctx)
}

func (c *countingVault) NewKey(ctx context.Context, instance string) (*vault.DataKey, error) {
	defer c.note("NewKey", instance, time.Now(), func(ic *instanceCalls) { ic.keys++ })
	return c.p.NewKey(ctx, instance)
}

func (c *countingVault) Unwrap(ctx context.Context, instance string, wrapped []byte) (vault.Secret, error) {
	defer c.note("Unwrap", "", time.Now(), nil)
	return c.p.Unwrap(ctx, instance, wrapped)
}

func (c *countingVault) Rewrap(ctx context.Context, instance string, wrapped []byte) ([]byte, error) {
	defer c.note("Rewrap", "", time.Now(), nil)
	return c.p.Rewrap(ctx, instance, wrapped)
}

// totals counts every call by method.
func (c *countingVault) totals() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := vaultCalls(c.calls).totals()
	maps.Copy(out, c.other)
	return out
}

func (c *countingVault) perInstance() vaultCalls {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

func (c *countingVault) requests() []vault.CertificateRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reqs)
}

func (c *countingVault) window() (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last
}

// countingSource counts the reads of the fleet: one per sync.
type countingSource struct {
	sources.Source
	snapshots atomic.Int64
}

func (s *countingSource) Snapshot(ctx context.Context, rev string) (*sources.Snapshot, error) {
	s.snapshots.Add(1)
	return s.Source.Snapshot(ctx, rev)
}

// watchedStore is the state store, timing its writes and noting when each
// instance got its key, its first generation in flight and first applied
// state, and when every instance last came to be applied with nothing in
// flight (settled).
type watchedStore struct {
	store.Store
	n           int
	gets        atomic.Int64
	updates     atomic.Int64
	updateNanos atomic.Int64  // from the call to the return
	heldNanos   atomic.Int64  // from fn's first call (the transaction begun, the record read) to the return: commit included
	signal      chan struct{} // a send whenever allSince is set

	mu                        sync.Mutex
	keyed, published, applied map[string]time.Time
	settled                   map[string]bool
	settledN                  int
	allSince                  time.Time // zero while one is not settled
}

func newWatchedStore(s store.Store, n int) *watchedStore {
	return &watchedStore{Store: s, n: n, signal: make(chan struct{}, 1), settled: map[string]bool{},
		keyed: map[string]time.Time{}, published: map[string]time.Time{}, applied: map[string]time.Time{}}
}

// Get counts the reads of one record: one per reconcile turn.
func (s *watchedStore) Get(ctx context.Context, name string) (*store.Record, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, name)
}

func (s *watchedStore) Update(ctx context.Context, name string, fn func(*store.Record) error) (*store.Record, error) {
	start := time.Now()
	var held time.Time // fn runs in the write transaction: from its first call, the writer is held
	r, err := s.Store.Update(ctx, name, func(r *store.Record) error {
		if held.IsZero() {
			held = time.Now()
		}
		return fn(r)
	})
	now := time.Now()
	s.updates.Add(1)
	s.updateNanos.Add(int64(now.Sub(start)))
	if !held.IsZero() {
		s.heldNanos.Add(int64(now.Sub(held)))
	}
	if err != nil {
		return r, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := func(m map[string]time.Time) {
		if _, ok := m[name]; !ok {
			m[name] = now
		}
	}
	settled := r.InFlight == nil && r.AppliedRevision != ""
	switch {
	case r.InFlight != nil:
		first(s.published)
	case settled:
		first(s.applied)
	case len(r.Keys) > 0:
		first(s.keyed)
	}
	if settled == s.settled[name] {
		return r, nil
	}
	s.settled[name] = settled
	if !settled {
		s.settledN--
		s.allSince = time.Time{}
		return r, nil
	}
	if s.settledN++; s.settledN == s.n {
		s.allSince = now
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
	return r, nil
}

// settle waits until every instance has been settled for quiet, and
// returns since when, with the CPU sampled when that began; false if that
// did not happen within timeout.
func (s *watchedStore) settle(quiet, timeout time.Duration, sample func(*cpuUse)) (time.Time, cpuUse, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var cpu cpuUse
	for {
		select {
		case <-s.signal:
			sample(&cpu)
		case <-deadline.C:
			return time.Time{}, cpu, false
		}
		for {
			s.mu.Lock()
			since := s.allSince
			s.mu.Unlock()
			if since.IsZero() {
				break // unsettled again: wait for the next signal
			}
			wait := time.Until(since.Add(quiet))
			if wait <= 0 {
				return since, cpu, true
			}
			time.Sleep(wait)
		}
	}
}

func (s *watchedStore) settledCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settledN
}

// heardLog notes when each instance's agent first reported, and first
// reported a generation Active.
type heardLog struct {
	mu           sync.Mutex
	seen, active map[string]time.Time
}

func (h *heardLog) note(s agent.Status) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.seen[s.Instance]; !ok {
		h.seen[s.Instance] = now
	}
	if _, ok := h.active[s.Instance]; !ok && s.Phase == agent.Active && s.Generation > 0 {
		h.active[s.Instance] = now
	}
}

// meanGap is the mean over the instances in both of to[name]-from[name].
func meanGap(from, to map[string]time.Time) time.Duration {
	var sum time.Duration
	k := 0
	for name, a := range from {
		if z, ok := to[name]; ok {
			sum += z.Sub(a)
			k++
		}
	}
	if k == 0 {
		return 0
	}
	return sum / time.Duration(k)
}

func phaseCounts(ctl *controller.Controller) map[string]int {
	out := map[string]int{}
	for _, v := range ctl.Instances() {
		out[fmt.Sprintf("%s verified=%v", v.Phase, v.Verified)]++
	}
	return out
}

// auditedRequests counts the responses Vault's file audit log holds
// after offset, by operation and path, and returns the offset of its end.
// Left out: sys/ (the benchmark's own administration) and auth/ (the
// provider's token upkeep: its lifetime watcher renews the token in the
// background, whatever the rollout does), which are logged.
func auditedRequests(b *testing.B, path string, offset int64) (map[string]int, int64) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		offset += int64(len(sc.Bytes())) + 1
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			b.Fatalf("audit log: %v", err)
		}
		switch {
		case e.Type != "response" || strings.HasPrefix(e.Request.Path, "sys/"):
		case strings.HasPrefix(e.Request.Path, "auth/"):
			b.Logf("Vault's audit log: %s %s (the provider's token upkeep), left out", e.Request.Operation, e.Request.Path)
		default:
			counts[e.Request.Operation+" "+e.Request.Path]++
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return counts, offset
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// tmpfsDir is a fresh directory in /dev/shm where there is one (else in
// the test's temporary directory), removed at the end of the benchmark.
func tmpfsDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "rollout-agents-"); err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}

// cpuUse is CPU time used so far by this process and by Vault.
type cpuUse struct{ self, vault time.Duration }

func (c cpuUse) minus(o cpuUse) cpuUse { return cpuUse{c.self - o.self, c.vault - o.vault} }

func (rb *rolloutBench) sample(c *cpuUse) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c.vault = procCPU(rb.vaultPID)
}

// procCPU is the user and system time of process pid from /proc (Linux,
// at the usual 100 clock ticks a second); 0 where there is none.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's closing parenthesis start at the
	// state (field 3); utime and stime are fields 14 and 15.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// vaultPID finds the process of the Vault dev server listening on
// hostport (Linux only; 0 elsewhere).
func vaultPID(hostport string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte("-dev-listen-address="+hostport+"\x00")) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}

// loadAverage is the machine's load over the last minute, to tell a run
// on a busy machine (/proc/loadavg; "?" elsewhere).
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return v
}

func medianFloat(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
