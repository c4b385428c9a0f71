package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/reconciler"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/sources/dir"
)

// The daemon plans the fleet with the same function as diff: every
// instance must be a create that no policy denies, or its agent would
// never be served and the load would measure refusals.
func TestFleetPlansEveryInstanceWithoutDenial(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ssl      string
		warnings int
	}{
		{"ssl disabled: no warnings", "disabled", 0},
		{"ssl enabled: the TLS 1.3 warning on each", "enabled", 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "fleet")
			st, err := writeFleet(root, 30, tc.ssl)
			if err != nil {
				t.Fatalf("writeFleet: %v", err)
			}
			src, err := dir.New(root)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := src.Snapshot(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			p, err := reconciler.Diff(t.Context(), reconciler.DiffInput{Desired: snap, Instances: "instances",
				Policies: "policies", RequirePolicies: true})
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			want := plan.Summary{Instances: 30, Create: 30, Warnings: tc.warnings}
			if diff := cmp.Diff(want, p.Summary()); diff != "" {
				t.Errorf("plan summary (-want +got):\n%s", diff)
			}
			for i, pi := range p.Instances {
				if pi.Name != instanceName(i) || !pi.Desired.RPCEncrypted() || pi.Desired.SSLEnabled() != (tc.ssl == "enabled") {
					t.Errorf("instance %d: %s, rpc %v, ssl %v; want %s, rpc on, ssl %s", i, pi.Name,
						pi.Desired.RPCEncrypted(), pi.Desired.SSLEnabled(), instanceName(i), tc.ssl)
				}
			}
			var got FleetStats
			data, err := os.ReadFile(filepath.Join(root, "fleet.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st, got); diff != "" {
				t.Errorf("fleet.json (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFleetRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
		ssl  string
	}{
		{"an existing directory", func(t *testing.T) string { return t.TempDir() }, "disabled"},
		{"an ssl value that is not enabled or disabled", func(t *testing.T) string { return filepath.Join(t.TempDir(), "f") }, "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := writeFleet(tc.dir(t), 1, tc.ssl); err == nil {
				t.Fatal("writeFleet: got nil error")
			}
		})
	}
}
