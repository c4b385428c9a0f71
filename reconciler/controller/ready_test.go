package controller_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/sources/dir"
)

// unreachable is a source whose first reads fail, as a git remote that is
// briefly down when the daemon starts.
type unreachable struct {
	sources.Source
	fails atomic.Int32
}

func (u *unreachable) Snapshot(ctx context.Context, rev string) (*sources.Snapshot, error) {
	if u.fails.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	return u.Source.Snapshot(ctx, rev)
}

// TestAFailedReadIsRetriedSoon: a source that fails at start is read
// again with backoff, not a whole poll interval (an hour here) later.
func TestAFailedReadIsRetriedSoon(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "instances"), 0o755)
	src, err := dir.New(root)
	if err != nil {
		t.Fatal(err)
	}
	flaky := &unreachable{Source: src}
	flaky.fails.Store(2)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctl := controller.New(controller.Config{Source: flaky, Instances: "instances", Policies: "policies",
		Store: st, Agents: transport.NewServer(), Poll: time.Hour, Resync: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "ready after two failed reads", ctl.Ready)
}
