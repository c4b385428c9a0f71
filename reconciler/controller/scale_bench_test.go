package controller

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/sources/git"
)

// BenchmarkOneFileCommit measures what a commit that changes one instance
// file costs the controller (fetch, changed files, plan, queue) in a fleet
// of BENCH_FLEET instances (default 10,000, from bench/genfleet, in a real
// git repository), against a full resync of the same fleet in the same
// run, alternately. It reports both medians and their ratio in percent
// (the goal: under 2).
func BenchmarkOneFileCommit(b *testing.B) {
	n := 10000
	if s := os.Getenv("BENCH_FLEET"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "fleet")
	for _, args := range [][]string{
		{"go", "run", "../../bench/genfleet", "-n", strconv.Itoa(n), dir},
		{"git", "-C", dir, "init", "-q", "-b", "main"},
		{"git", "-C", dir, "add", "-A"},
		{"git", "-C", dir, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "fleet"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	var file string
	filepath.WalkDir(filepath.Join(dir, "instances"), func(p string, d os.DirEntry, err error) error {
		if file == "" && err == nil && !d.IsDir() {
			file = p
		}
		return nil
	})
	src, err := git.Open(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	c := New(Config{Source: src, Revision: "main", Instances: "instances", Policies: "policies", Store: st,
		Agents: transport.NewServer()})
	if !c.sync(ctx, true) {
		b.Fatal("the first plan failed")
	}
	if got := len(c.Instances()); got < n {
		b.Fatalf("%d instances planned, want at least %d", got, n)
	}
	// The fleet as it is in production: applied, so that a plan finds
	// most instances unchanged.
	c.mu.Lock()
	for name, pi := range c.plan {
		if pi.Desired != nil {
			c.appliedSpec[name] = pi.Desired
		}
	}
	c.mu.Unlock()
	flip := []byte("ssl: enabled")
	var commits, resyncs []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		data, _ := os.ReadFile(file)
		if bytes.Contains(data, flip) {
			data = bytes.Replace(data, flip, []byte("ssl: disabled"), 1)
		} else {
			data = bytes.Replace(data, []byte("ssl: disabled"), flip, 1)
		}
		os.WriteFile(file, data, 0o644)
		if out, err := exec.Command("git", "-C", dir, "-c", "user.name=bench", "-c", "user.email=bench@example.com",
			"commit", "-q", "-am", fmt.Sprint("flip ", i)).CombinedOutput(); err != nil {
			b.Fatalf("commit: %v\n%s", err, out)
		}
		b.StartTimer()
		start := time.Now()
		if !c.sync(ctx, false) {
			b.Fatal("sync after a commit failed")
		}
		commits = append(commits, time.Since(start))
		start = time.Now()
		if !c.sync(ctx, true) {
			b.Fatal("resync failed")
		}
		resyncs = append(resyncs, time.Since(start))
	}
	commit, resync := median(commits), median(resyncs)
	b.ReportMetric(float64(commit.Microseconds())/1000, "commit-ms")
	b.ReportMetric(float64(resync.Microseconds())/1000, "resync-ms")
	b.ReportMetric(100*float64(commit)/float64(resync), "commit/resync-%")
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
