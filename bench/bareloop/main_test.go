package main

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRunCountsEveryDocumentAndRuleKind(t *testing.T) {
	got, err := run(t.Context(), "testdata/policies", "testdata/instances")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// a.yaml: warn_two twice. multi.yml: b is blocked (data from
	// lists.yaml) and warned twice; the third document has no name (deny)
	// and x (violation); the empty trailing document is skipped.
	want := counts{files: 2, documents: 3, results: map[string]int{"deny": 2, "violation": 1, "warn": 4}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(counts{})); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

func TestRunFailsOnBrokenYAML(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/bad.yaml", "a: [\n")
	if _, err := run(t.Context(), "testdata/policies", dir); err == nil {
		t.Fatal("run on broken YAML: got nil error")
	}
}

func TestRunFailsOnBrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/p.rego", "package main\n\ndeny contains if {\n")
	if _, err := run(t.Context(), dir, "testdata/instances"); err == nil {
		t.Fatal("run with a policy that does not compile: got nil error")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
