package controller

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/sources/dir"
)

// TestAnUnchangedDirectoryIsNotPlannedAgain checks that a poll of a
// directory whose files did not change plans nothing, and that a written
// file, an applied instance or a resync each plan again.
func TestAnUnchangedDirectoryIsNotPlannedAgain(t *testing.T) {
	ctx := context.Background()
	fleet := t.TempDir()
	file := filepath.Join(fleet, "instances", "search.yaml")
	os.MkdirAll(filepath.Dir(file), 0o755)
	doc := []byte("apiVersion: reconciler/v1\nkind: Instance\nmetadata: {name: search-db}\nspec:\n  datastore: {type: manticore, version: \"6.3\"}\n  hosts: [127.0.0.1]\n  ssl: disabled\n")
	os.WriteFile(file, doc, 0o644)
	src, err := dir.New(fleet)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := New(Config{Source: src, Instances: "instances", Policies: "policies", Store: st, Agents: transport.NewServer()})
	planned := func() uintptr {
		c.mu.Lock()
		defer c.mu.Unlock()
		return uintptr(reflect.ValueOf(c.plan).UnsafePointer())
	}
	steps := []struct {
		name   string
		before func()
		all    bool
		want   bool // a new plan
	}{
		{"the first read", func() {}, false, true},
		{"nothing changed", func() {}, false, false},
		{"a file written", func() {
			later := time.Now().Add(time.Second)
			os.WriteFile(file, append(doc, []byte("# a comment\n")...), 0o644)
			os.Chtimes(file, later, later)
		}, false, true},
		{"nothing changed again", func() {}, false, false},
		{"an instance applied", func() {
			c.mu.Lock()
			c.appliedSpec["search-db"] = c.plan["search-db"].Desired
			c.appliedChanges++
			c.mu.Unlock()
		}, false, true},
		{"a resync", func() {}, true, true},
	}
	for _, s := range steps {
		before := planned()
		s.before()
		if !c.sync(ctx, s.all) {
			t.Fatalf("%s: sync failed", s.name)
		}
		if got := planned() != before; got != s.want {
			t.Errorf("%s: planned again = %v, want %v", s.name, got, s.want)
		}
	}
}

// TestAStalePlanIsNotActedOn checks that a plan made before the
// instance's last applied state was recorded publishes nothing (it would
// issue the certificate just confirmed again), and asks for a new plan.
func TestAStalePlanIsNotActedOn(t *testing.T) {
	ctx := context.Background()
	fleet := t.TempDir()
	file := filepath.Join(fleet, "instances", "search.yaml")
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, []byte("apiVersion: reconciler/v1\nkind: Instance\nmetadata: {name: search-db}\nspec:\n  datastore: {type: manticore, version: \"6.3\"}\n  hosts: [127.0.0.1]\n  ssl: enabled\n"), 0o644)
	src, err := dir.New(fleet)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := New(Config{Source: src, Instances: "instances", Policies: "policies", Store: st, Agents: transport.NewServer()})
	if !c.sync(ctx, false) {
		t.Fatal("sync failed")
	}
	select {
	case <-c.trigger: // drain
	default:
	}
	// The instance is applied after the plan was made, as when a
	// confirmation commits while a re-plan reads the fleet.
	c.mu.Lock()
	c.appliedSpec["search-db"] = c.plan["search-db"].Desired
	c.mu.Unlock()
	if err := c.reconcile(ctx, "search-db"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	own := c.views["search-db"] // what the turn decided, before the agent's report is composed in
	c.mu.Unlock()
	if own.Phase != "" || own.Message != "" {
		t.Errorf("a stale plan was acted on: %s: %s", own.Phase, own.Message)
	}
	select {
	case <-c.trigger:
	default:
		t.Error("a stale plan did not ask for a new one")
	}
}
