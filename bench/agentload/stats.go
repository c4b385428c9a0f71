package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot is what the agents have done so far, written as the stats
// file (one key per line, so bench/agents.sh reads it with sed). The
// counters only grow: a window's figures are the differences of two
// snapshots.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Agents   int       `json:"agents"`
	Started  int64     `json:"started"`
	Enrolled int64     `json:"enrolled"` // agents holding the RPC key the reconciler delivered
	Applied  int64     `json:"applied"`  // agents that applied a desired state and report Active
	InFlight int64     `json:"in_flight"`
	// Polls are the polls answered; ChangedPolls those that brought newer
	// desired state, HeldPolls those the reconciler held until the
	// heartbeat interval passed with nothing new, HeldSeconds their total
	// time, so HeldSeconds/HeldPolls is the real heartbeat interval.
	Polls          int64            `json:"polls"`
	ChangedPolls   int64            `json:"changed_polls"`
	HeldPolls      int64            `json:"held_polls"`
	HeldSeconds    float64          `json:"held_seconds"`
	HeldMinSeconds float64          `json:"held_min_seconds"`
	HeldMaxSeconds float64          `json:"held_max_seconds"`
	Errors         int64            `json:"errors"`
	ErrorsByReason map[string]int64 `json:"errors_by_reason,omitempty"`
	LastError      string           `json:"last_error,omitempty"`
}

// counters are a load's live figures, updated by every agent.
type counters struct {
	agents                                    int
	started, enrolled, applied, inFlight      atomic.Int64
	changed, heldPolls, heldNanos, errorCount atomic.Int64
	heldMin, heldMax                          atomic.Int64 // nanoseconds; min is 0 until the first

	mu        sync.Mutex
	reasons   map[string]int64
	lastError string
}

// held counts a poll the reconciler held for d.
func (c *counters) held(d time.Duration) {
	c.heldPolls.Add(1)
	c.heldNanos.Add(int64(d))
	for {
		cur := c.heldMin.Load()
		if (cur != 0 && cur <= int64(d)) || c.heldMin.CompareAndSwap(cur, int64(d)) {
			break
		}
	}
	for {
		cur := c.heldMax.Load()
		if cur >= int64(d) || c.heldMax.CompareAndSwap(cur, int64(d)) {
			break
		}
	}
}

// failed counts a failed poll under its reason.
func (c *counters) failed(err error) {
	c.errorCount.Add(1)
	reason := errorReason(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reasons == nil {
		c.reasons = map[string]int64{}
	}
	c.reasons[reason]++
	c.lastError = err.Error()
}

// Snapshot returns the load's figures now.
func (l *Load) Snapshot() Snapshot {
	c := &l.counts
	held := c.heldPolls.Load()
	s := Snapshot{
		Time: time.Now().UTC(), Agents: c.agents, Started: c.started.Load(), Enrolled: c.enrolled.Load(),
		Applied: c.applied.Load(), InFlight: c.inFlight.Load(), ChangedPolls: c.changed.Load(), HeldPolls: held,
		HeldSeconds:    time.Duration(c.heldNanos.Load()).Seconds(),
		HeldMinSeconds: time.Duration(c.heldMin.Load()).Seconds(), HeldMaxSeconds: time.Duration(c.heldMax.Load()).Seconds(),
		Errors: c.errorCount.Load(),
	}
	s.Polls = s.ChangedPolls + s.HeldPolls
	c.mu.Lock()
	s.ErrorsByReason = maps.Clone(c.reasons)
	s.LastError = c.lastError
	c.mu.Unlock()
	return s
}

// writeSnapshot replaces path with s, atomically, so a reader never sees
// half a file.
func writeSnapshot(path string, s Snapshot) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stats-*")
	if err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write stats: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write stats: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

// Report writes a snapshot to path (if set) every interval and logs the
// progress every tenth time, until ctx ends; then it writes a last one.
func (l *Load) Report(ctx context.Context, path string, every time.Duration, log *slog.Logger) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		done := false
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		s := l.Snapshot()
		if path != "" {
			if err := writeSnapshot(path, s); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		if n%10 == 9 {
			heartbeat := 0.0
			if s.HeldPolls > 0 {
				heartbeat = s.HeldSeconds / float64(s.HeldPolls)
			}
			log.InfoContext(ctx, "agents", "started", s.Started, "enrolled", s.Enrolled, "applied", s.Applied,
				"in_flight", s.InFlight, "polls", s.Polls, "mean_held_s", math.Round(heartbeat*10)/10,
				"errors", s.Errors, "last_error", s.LastError)
		}
	}
}
