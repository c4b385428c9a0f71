package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/reconciler-dev/reconciler/specs"
)

// genTestFleet generates a small fleet once per test; 400 files hold a few
// dozen multi-document files and a handful of denials.
func genTestFleet(t *testing.T, seed uint64) (string, Stats) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fleet")
	st, err := generate(dir, 400, seed)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return dir, st
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, _ := genTestFleet(t, 7)
	b, _ := genTestFleet(t, 7)
	if diff := cmp.Diff(readTree(t, a), readTree(t, b)); diff != "" {
		t.Errorf("same seed, different fleets (-first +second):\n%s", diff)
	}
}

func TestGenerateRefusesExistingDirectory(t *testing.T) {
	if _, err := generate(t.TempDir(), 1, 1); err == nil {
		t.Fatal("generate over an existing directory: got nil error")
	}
}

// The reconciler must read every generated file without an error, or the
// benchmark would measure error handling instead of planning.
func TestGeneratedInstancesAreValid(t *testing.T) {
	dir, st := genTestFleet(t, 1)
	fleet, err := specs.Load(t.Context(), os.DirFS(dir), "instances")
	if err != nil {
		t.Fatalf("load fleet: %v", err)
	}
	if len(fleet.Errors) > 0 {
		t.Fatalf("generated fleet has %d errors, first: %v", len(fleet.Errors), fleet.Errors[0])
	}
	got := Stats{Files: len(fleet.Files), Instances: len(fleet.Instances)}
	want := Stats{Files: st.Files, Instances: st.Instances}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loaded fleet (-want +got):\n%s", diff)
	}
	if st.MultiDocumentFiles == 0 || st.Instances <= st.Files {
		t.Errorf("no multi-document files in %+v", st)
	}
	for _, in := range fleet.Instances {
		seen := map[string]bool{}
		for _, h := range in.Spec.Hosts {
			if seen[h] {
				t.Errorf("%s lists host %s twice", in.Metadata.Name, h)
			}
			seen[h] = true
		}
	}
}

// The counts in fleet.json are what the benchmark checks each tool against,
// so they must be what OPA really computes with the generated policy.
func TestStatsMatchThePolicy(t *testing.T) {
	dir, st := genTestFleet(t, 1)
	query, err := rego.New(
		rego.Query("deny := count(data.main.deny_ssl_required) + count(data.main.deny_rpc_encryption); warn := count(data.main.warn_tls_version)"),
		rego.Load([]string{filepath.Join(dir, "policies")}, nil),
	).PrepareForEval(t.Context())
	if err != nil {
		t.Fatalf("prepare policy: %v", err)
	}
	fleet, err := specs.Load(t.Context(), os.DirFS(dir), "instances")
	if err != nil {
		t.Fatalf("load fleet: %v", err)
	}
	got := Stats{Files: st.Files, MultiDocumentFiles: st.MultiDocumentFiles, Instances: st.Instances}
	for _, in := range fleet.Instances {
		rs, err := query.Eval(t.Context(), rego.EvalInput(in.Raw))
		if err != nil {
			t.Fatalf("evaluate %s: %v", in.Metadata.Name, err)
		}
		deny, _ := rs[0].Bindings["deny"].(json.Number).Int64()
		warn, _ := rs[0].Bindings["warn"].(json.Number).Int64()
		got.Deny += int(deny)
		got.Warn += int(warn)
		if deny > 0 {
			got.DeniedInstances++
		}
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("fleet.json against OPA (-fleet.json +opa):\n%s", diff)
	}
	// About 2% denied: between 0.5% and 5% of a 400-file sample.
	if pct := 100 * float64(st.DeniedInstances) / float64(st.Instances); pct < 0.5 || pct > 5 {
		t.Errorf("%.1f%% of instances denied, want about 2%%", pct)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(path, dir)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return files
}
