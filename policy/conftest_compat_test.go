//go:build conftestcompat

// The conftest compatibility test builds conftest v0.71.1 from the Go
// module proxy and runs it on the same policies and documents as the
// engine. A cold build downloads and compiles conftest's dependencies
// (about two minutes on two cores), too slow for every `go test`, hence the
// build tag:
//
//	go test -tags conftestcompat -run Conftest ./policy/

package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

const conftestModule = "github.com/open-policy-agent/conftest@v0.71.1"

// buildConftest builds conftest into a temporary directory, or skips the
// test when it cannot be built here (no module proxy, no toolchain).
func buildConftest(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("cannot build conftest: no go toolchain: %v", err)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")

	// Outside any module, so that our go.mod and go.sum are not touched.
	download := exec.Command(goBin, "mod", "download", "-json", conftestModule)
	download.Dir, download.Env = t.TempDir(), env
	out, err := download.Output()
	if err != nil {
		t.Skipf("cannot build conftest: go mod download %s: %v", conftestModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Skipf("cannot build conftest: go mod download said %s", out)
	}

	bin := filepath.Join(t.TempDir(), "conftest")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir, build.Env = mod.Dir, env
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build conftest: go build: %v\n%s", err, out)
	}
	return bin
}

// checkResult is the part of conftest's JSON output compared.
type checkResult struct {
	Filename   string           `json:"filename"`
	Namespace  string           `json:"namespace"`
	Warnings   []conftestResult `json:"warnings"`
	Failures   []conftestResult `json:"failures"`
	Exceptions []conftestResult `json:"exceptions"`
}

type conftestResult struct {
	Msg      string         `json:"msg"`
	Loc      *Location      `json:"loc"`
	Metadata map[string]any `json:"metadata"`
}

// summary is a document's results as comparable lines.
type summary struct {
	Failures, Warnings, Exceptions []string
}

func line(ns, query, msg string, loc *Location, md map[string]any) string {
	rest := map[string]any{}
	for k, v := range md {
		if k != "query" {
			rest[k] = v
		}
	}
	bs, err := json.Marshal([]any{loc, rest})
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%s %s %q %s", ns, query, msg, bs)
}

// conftestTest runs `conftest test` in dir on files and returns a summary
// per file. Results of the fleet namespace are left out: conftest would
// evaluate it per file, the engine evaluates it once over the fleet.
func conftestTest(t *testing.T, bin, dir, fleet string, namespaces []string, all bool, files []string) map[string]*summary {
	t.Helper()
	args := []string{"test", "--no-fail", "--no-color", "-o", "json", "-p", "policies", "-d", "policies"}
	for _, ns := range namespaces {
		args = append(args, "--namespace", ns)
	}
	if all {
		args = append(args, "--all-namespaces")
	}
	cmd := exec.Command(bin, append(args, files...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("conftest %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var results []checkResult
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&results); err != nil {
		t.Fatalf("decode conftest output: %v\n%s", err, out)
	}
	sums := map[string]*summary{}
	for _, f := range files {
		sums[f] = &summary{}
	}
	for _, r := range results {
		if r.Namespace == fleet {
			continue
		}
		s := sums[r.Filename]
		if s == nil {
			t.Fatalf("conftest reported on %q, not one of %v", r.Filename, files)
		}
		for _, f := range r.Failures {
			s.Failures = append(s.Failures, line(r.Namespace, fmt.Sprint(f.Metadata["query"]), f.Msg, f.Loc, f.Metadata))
		}
		for _, w := range r.Warnings {
			s.Warnings = append(s.Warnings, line(r.Namespace, fmt.Sprint(w.Metadata["query"]), w.Msg, w.Loc, w.Metadata))
		}
		for _, e := range r.Exceptions {
			s.Exceptions = append(s.Exceptions, r.Namespace+" "+e.Msg)
		}
	}
	for _, s := range sums {
		s.sort()
	}
	return sums
}

func (s *summary) sort() {
	slices.Sort(s.Failures)
	slices.Sort(s.Warnings)
	slices.Sort(s.Exceptions)
}

func ourSummary(v Verdict, fleet string) *summary {
	s := &summary{}
	for _, m := range v.Deny {
		if m.Namespace != fleet {
			s.Failures = append(s.Failures, line(m.Namespace, "data."+m.Namespace+"."+m.Rule, m.Msg, m.Location, m.Metadata))
		}
	}
	for _, m := range v.Warn {
		if m.Namespace != fleet {
			s.Warnings = append(s.Warnings, line(m.Namespace, "data."+m.Namespace+"."+m.Rule, m.Msg, m.Location, m.Metadata))
		}
	}
	for _, m := range v.Exceptions {
		s.Exceptions = append(s.Exceptions, m.Namespace+" "+m.Msg)
	}
	s.sort()
	return s
}

func compare(t *testing.T, bin, dir string, docs []Document, namespaces []string, all bool) {
	t.Helper()
	var opts []Option
	if len(namespaces) > 0 {
		opts = append(opts, WithNamespaces(namespaces...))
	}
	if all {
		opts = append(opts, WithAllNamespaces())
	}
	e, err := Load(context.Background(), os.DirFS(dir), "policies", opts...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Evaluate(context.Background(), docs)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, d := range docs {
		files = append(files, d.File)
	}
	theirs := conftestTest(t, bin, dir, DefaultFleetNamespace, namespaces, all, files)
	for i, d := range docs {
		ours := ourSummary(res.Instances[i], DefaultFleetNamespace)
		if diff := cmp.Diff(theirs[d.File], ours); diff != "" {
			t.Errorf("%s: results differ from conftest's (-conftest +ours):\n%s", d.File, diff)
		}
	}
}

func TestConftestCompatibility(t *testing.T) {
	bin := buildConftest(t)

	for _, tc := range evaluateCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.conftestSkip != "" {
				t.Skip(tc.conftestSkip)
			}
			docs := tc.docs(t)
			dir := t.TempDir()
			for name, content := range tc.policies {
				write(t, filepath.Join(dir, "policies", name), content)
			}
			for i := range docs {
				in, err := inputValue(docs[i])
				if err != nil {
					t.Fatal(err)
				}
				v, err := ast.JSON(in)
				if err != nil {
					t.Fatal(err)
				}
				bs, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				docs[i].File = fmt.Sprintf("instances/%d-%s.json", i, docs[i].Name)
				write(t, filepath.Join(dir, docs[i].File), string(bs))
			}
			compare(t, bin, dir, docs, tc.namespaces, tc.all)
		})
	}

	fleetDir, err := filepath.Abs("testdata/fleet")
	if err != nil {
		t.Fatal(err)
	}
	fleetDocs := readInstances(t, os.DirFS(fleetDir), "instances")
	for _, tc := range []struct {
		name       string
		namespaces []string
		all        bool
	}{
		{name: "fleet repository, default namespace"},
		{name: "fleet repository, explicit namespaces", namespaces: []string{"prod.tls", "prod.rpc"}},
		{name: "fleet repository, globs", namespaces: []string{"prod.*", "m*"}},
		{name: "fleet repository, all namespaces", all: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compare(t, bin, fleetDir, fleetDocs, tc.namespaces, tc.all)
		})
	}

	// conftest rejects deny[msg] if (its problematicIf) and silently passes
	// deny if; the engine rejects both.
	for _, tc := range []struct {
		name, policy    string
		conftestRejects bool
	}{
		{name: "deny[msg] if is rejected by both", policy: "package main\n\ndeny[msg] if {\n\tmsg := \"x\"\n}\n", conftestRejects: true},
		{name: "deny if is rejected here and passes in conftest", policy: "package main\n\ndeny if {\n\ttrue\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "policies", "main.rego"), tc.policy)
			write(t, filepath.Join(dir, "input.json"), "{}")
			cmd := exec.Command(bin, "test", "--no-color", "-p", "policies", "input.json")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if rejected := err != nil && strings.Contains(string(out), "'if' keyword without 'contains' keyword"); rejected != tc.conftestRejects {
				t.Errorf("conftest rejected = %v, want %v: %v\n%s", rejected, tc.conftestRejects, err, out)
			}
			if !tc.conftestRejects && !strings.Contains(string(out), "1 test, 1 passed") {
				t.Errorf("conftest did not pass the bare deny if:\n%s", out)
			}
			_, err = Load(context.Background(), os.DirFS(dir), "policies")
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) != 1 || perr.Problems[0].Line != 3 {
				t.Errorf("Load() error = %v, want one problem at line 3", err)
			}
		})
	}
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
