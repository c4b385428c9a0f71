package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const fleet = "../../examples/fleet"

// reconcile runs the command line in process and returns its exit status
// and outputs.
func reconcile(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

// TestExamplesFleet runs diff on examples/fleet, as the README does, in
// every output format.
func TestExamplesFleet(t *testing.T) {
	for _, format := range []string{"text", "json", "markdown"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := reconcile(t, "diff", fleet, "-o", format)
			if code != 2 {
				t.Fatalf("exit status %d, want 2 (changes); stderr: %s", code, errOut)
			}
			golden(t, "examples-fleet."+format, out)
		})
	}
}

func TestExamplesFleetJSONContract(t *testing.T) {
	_, out, _ := reconcile(t, "diff", fleet, "-o", "json")
	var doc struct {
		Summary struct {
			Instances, Changed, Denied, Warnings, Errors int
		}
		Instances []struct {
			Name, File, Datastore, Change string
			Fields                        []struct {
				Path     string
				From, To any
			}
			Actions []string
			Policy  struct {
				Deny, Warn []struct{ Msg string }
			}
		}
		Errors []struct {
			File    string
			Line    int
			Message string
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary.Instances != 15 || doc.Summary.Changed != 15 || doc.Summary.Denied != 0 || doc.Summary.Errors != 0 {
		t.Errorf("summary = %+v, want 15 instances, 15 changed, none denied, no errors", doc.Summary)
	}
	for _, in := range doc.Instances {
		if in.Change != "create" || !strings.HasPrefix(in.File, "instances/") {
			t.Errorf("%s: change %q file %q, want a create from instances/", in.Name, in.Change, in.File)
		}
	}
}

func TestExamplesPolicyTests(t *testing.T) {
	code, out, errOut := reconcile(t, "policy", "test", filepath.Join(fleet, "policies"))
	if code != 0 {
		t.Fatalf("policy test exit %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "12 passed, 0 failed") {
		t.Errorf("output does not report 12 passes:\n%s", out)
	}
}

func TestPolicyTestFailureNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "p.rego"), "package main\n\ndeny contains \"x\" if input.a\n")
	write(t, filepath.Join(dir, "p_test.rego"), "package main\n\ntest_ok if true\n\ntest_broken if {\n\tcount(deny) == 0 with input as {\"a\": true}\n}\n")
	code, out, _ := reconcile(t, "policy", "test", dir)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range []string{"PASS  data.main.test_ok", "FAIL  " + filepath.Join(dir, "p_test.rego") + ":5: data.main.test_broken", "1 passed, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// mergeRequest makes a git repository holding examples/fleet at one commit
// and returns it with the working tree ready for an edit.
func mergeRequest(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fleet)); err != nil {
		t.Fatal(err)
	}
	repo, err := gogit.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "fleet", Email: "fleet@example.com", When: time.Unix(1_700_000_000, 0)}
	if _, err := wt.Commit("fleet", &gogit.CommitOptions{Author: sig, Committer: sig}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	write(t, path, strings.Replace(string(data), old, new, 1))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDiffMergeRequest(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(t *testing.T, dir string)
		wantCode int
		golden   string
	}{
		{
			name:     "nothing changed",
			edit:     func(*testing.T, string) {},
			wantCode: 0,
			golden:   "mr-unchanged.text",
		},
		{
			name: "enabling ssl in staging is a change",
			edit: func(t *testing.T, dir string) {
				edit(t, filepath.Join(dir, "instances/staging/databases.yaml"),
					"hosts: [payments-db.staging.internal]\n  ssl: disabled", "hosts: [payments-db.staging.internal]\n  ssl: enabled")
			},
			wantCode: 2,
			golden:   "mr-enable-ssl.text",
		},
		{
			name: "disabling ssl in production is denied",
			edit: func(t *testing.T, dir string) {
				edit(t, filepath.Join(dir, "instances/production/ledger.yaml"), "ssl: enabled", "ssl: disabled")
			},
			wantCode: 3,
			golden:   "mr-disable-ssl.text",
		},
		{
			name: "a broken file is an error and holds its instances",
			edit: func(t *testing.T, dir string) {
				edit(t, filepath.Join(dir, "instances/production/catalog.yaml"), "ssl: enabled", "ssl: yes")
				edit(t, filepath.Join(dir, "instances/production/ledger.yaml"), "ssl: enabled", "ssl: disabled")
			},
			wantCode: 1,
			golden:   "mr-broken-file.text",
		},
		{
			name: "a removed instance is released",
			edit: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "instances/production/search.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			wantCode: 2,
			golden:   "mr-remove.text",
		},
		{
			name: "two instances claiming one host are denied by the fleet rule",
			edit: func(t *testing.T, dir string) {
				edit(t, filepath.Join(dir, "instances/dev/sandbox.yaml"), "hosts: [orders-db.dev.internal]", "hosts: [orders-db.dev.internal, search.dev.internal]")
			},
			wantCode: 3,
			golden:   "mr-shared-host.text",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mergeRequest(t)
			tt.edit(t, dir)
			code, out, errOut := reconcile(t, "diff", dir, "--base", "HEAD", "--no-color")
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d; stderr: %s\n%s", code, tt.wantCode, errOut, out)
			}
			golden(t, tt.golden, strings.ReplaceAll(out, dir, "FLEET"))
		})
	}
}

func TestDiffMergeRequestMarkdown(t *testing.T) {
	dir := mergeRequest(t)
	edit(t, filepath.Join(dir, "instances/production/ledger.yaml"), "ssl: enabled", "ssl: disabled")
	edit(t, filepath.Join(dir, "instances/staging/databases.yaml"),
		"hosts: [payments-db.staging.internal]\n  ssl: disabled", "hosts: [payments-db.staging.internal]\n  ssl: enabled")
	code, out, _ := reconcile(t, "diff", dir, "--base", "HEAD", "-o", "markdown")
	if code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	golden(t, "mr.markdown", strings.ReplaceAll(out, dir, "FLEET"))
}

func TestDiffErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown format", []string{"diff", fleet, "-o", "yaml"}, `unknown format "yaml"`},
		{"missing directory", []string{"diff", "/nonexistent/fleet"}, "/nonexistent/fleet"},
		{"revision outside git", []string{"diff", t.TempDir(), "--base", "HEAD"}, "need a git repository"},
		{"named policy directory missing", []string{"diff", fleet, "--policy", "nosuch"}, "nosuch"},
		{"unknown namespace", []string{"diff", fleet, "--namespace", "nosuch"}, "nosuch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := reconcile(t, tt.args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if !strings.Contains(errOut+out, tt.wantErr) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", tt.wantErr, out, errOut)
			}
		})
	}
}

func TestSchemaAndVersion(t *testing.T) {
	code, out, _ := reconcile(t, "schema")
	var schema map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &schema) != nil || schema["title"] != "reconciler Instance" {
		t.Errorf("schema: exit %d, output is not the instance schema:\n%.200s", code, out)
	}
	code, out, _ = reconcile(t, "version")
	if code != 0 || !strings.HasPrefix(out, "reconciler ") {
		t.Errorf("version: exit %d, output %q", code, out)
	}
}

// TestDiffMergeRequestAddingTheFleet compares a fleet kept in a
// subdirectory with a base commit from before it existed: all creates.
func TestDiffMergeRequestAddingTheFleet(t *testing.T) {
	dir := t.TempDir()
	repo, err := gogit.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	sig := &object.Signature{Name: "fleet", Email: "fleet@example.com", When: time.Unix(1_700_000_000, 0)}
	commit := func(msg string) {
		t.Helper()
		if err := wt.AddGlob("."); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Commit(msg, &gogit.CommitOptions{Author: sig, Committer: sig}); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "README.md"), "platform repository\n")
	commit("start")
	if err := os.CopyFS(filepath.Join(dir, "fleet"), os.DirFS(fleet)); err != nil {
		t.Fatal(err)
	}
	commit("add the fleet")
	code, out, errOut := reconcile(t, "diff", filepath.Join(dir, "fleet"), "--rev", "HEAD", "--base", "HEAD~1", "--no-color")
	if code != 2 || !strings.Contains(out, "Plan: 15 to create, 0 to update, 0 to delete, 0 unchanged") {
		t.Errorf("exit %d, want 2 and 15 creates:\n%s%s", code, out, errOut)
	}
}

func TestDiffShowBuiltinErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fleet)); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "policies", "broken.rego"), "package main\n\ndeny_port contains \"bad\" if to_number(\"not a number\") > 1\n")
	if code, out, errOut := reconcile(t, "diff", dir, "-o", "json"); code != 2 {
		t.Errorf("without the flag a failing builtin is silent (conftest's default): exit %d, want 2\n%s%s", code, out, errOut)
	}
	code, _, errOut := reconcile(t, "diff", dir, "--show-builtin-errors")
	if code != 1 || !strings.Contains(errOut, "to_number") {
		t.Errorf("with --show-builtin-errors: exit %d, want 1 naming the builtin; stderr: %s", code, errOut)
	}
}
