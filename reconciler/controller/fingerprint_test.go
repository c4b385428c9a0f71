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
