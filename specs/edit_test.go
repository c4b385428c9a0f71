package specs

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestSetSSL(t *testing.T) {
	tests := []struct {
		name     string // testdata/edit/NAME.yaml, and NAME.after.yaml the golden output
		instance string
		enable   bool
		// unchanged: the instance already has the value.
		unchanged bool
		// wantErr, if set, is a part of the error; there is no output.
		wantErr string
	}{
		{name: "multi-document", instance: "payments-db", enable: true},
		{name: "comments-everywhere", instance: "payments-db", enable: true},
		{name: "double-quoted", instance: "orders-db", enable: true},
		{name: "single-quoted-disable", instance: "orders-db", enable: false},
		{name: "tagged", instance: "orders-db", enable: true},
		{name: "crlf", instance: "orders-replica", enable: true},
		{name: "flow-map", instance: "search", enable: true},
		{name: "flow-map-multiline", instance: "search", enable: false},
		{name: "ssl-absent", instance: "orders-db", enable: true},
		{name: "ssl-absent-crlf", instance: "orders-db", enable: false},
		{name: "ssl-absent-flow", instance: "orders-db", enable: true},
		{name: "already-enabled", instance: "orders-db", enable: true, unchanged: true},
		{name: "not-in-file", instance: "orders", enable: true,
			wantErr: `metadata.name: no instance named "orders" in this file; check the name; this file defines orders-db, payments-db, ledger-db`},
		{name: "defined-twice", instance: "orders-db", enable: false,
			wantErr: `:9: metadata.name: instance "orders-db" is defined twice in this file (first on line 1)`},
		{name: "alias", instance: "orders-db", enable: true,
			wantErr: `:9:8: spec.ssl: spec.ssl of instance "orders-db" is the alias *off, which other fields may share; write the value out as ssl: enabled`},
		{name: "block-scalar", instance: "orders-db", enable: true,
			wantErr: `spec.ssl of instance "orders-db" is a block scalar (| or >), which cannot be edited in place; write it on one line as ssl: enabled`},
		{name: "provider-none", instance: "orders-db", enable: true,
			wantErr: `spec.tls.provider: provider "none" issues no certificate, but spec.ssl is enabled`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "edit", tt.name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out, changed, err := SetSSL(src, tt.instance, tt.enable)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				var e *Error
				var list ErrorList
				if !errors.As(err, &e) && !errors.As(err, &list) {
					t.Errorf("error %T is neither an *Error nor an ErrorList", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed == tt.unchanged {
				t.Errorf("changed = %v, want %v", changed, !tt.unchanged)
			}
			if tt.unchanged {
				if !bytes.Equal(out, src) {
					t.Errorf("output differs from the input, which already had the value:\n%s", out)
				}
				return
			}
			golden := filepath.Join("testdata", "edit", tt.name+".after.yaml")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(out)); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
			if n := changedLines(src, out); n != 1 {
				t.Errorf("%d lines differ from the input, want exactly 1", n)
			}
			checkSSL(t, out, tt.instance, tt.enable)
			// Running it again changes nothing.
			again, changed, err := SetSSL(out, tt.instance, tt.enable)
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("second SetSSL: changed %v, error %v, want no change", changed, err)
			}
		})
	}
}

// checkSSL fails the test unless data parses strictly and its instance
// name has the ssl asked for.
func checkSSL(t *testing.T, data []byte, name string, enabled bool) {
	t.Helper()
	ins, err := Parse("out.yaml", data, DefaultDefaults())
	if err != nil {
		t.Fatalf("output does not parse:\n%v\n%s", err, data)
	}
	for _, in := range ins {
		if in.Metadata.Name == name {
			if in.SSLEnabled() != enabled {
				t.Fatalf("instance %s has spec.ssl %q, want enabled %v", name, in.Spec.SSL, enabled)
			}
			return
		}
	}
	t.Fatalf("instance %s is missing from the output", name)
}

// changedLines returns how many lines differ between a and b: those
// replaced, plus those added or removed, around a common head and tail.
func changedLines(a, b []byte) int {
	la, lb := bytes.SplitAfter(a, []byte("\n")), bytes.SplitAfter(b, []byte("\n"))
	head := 0
	for head < len(la) && head < len(lb) && bytes.Equal(la[head], lb[head]) {
		head++
	}
	tail := 0
	for tail < len(la)-head && tail < len(lb)-head && bytes.Equal(la[len(la)-1-tail], lb[len(lb)-1-tail]) {
		tail++
	}
	return max(len(la)-head-tail, len(lb)-head-tail)
}

func TestSetSSLOnTheExamplesFleet(t *testing.T) {
	files, err := filepath.Glob("../examples/fleet/instances/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example instance files: %v", err)
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ins, err := Parse(file, src, DefaultDefaults())
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			for _, enable := range []bool{true, false} {
				out, changed, err := SetSSL(src, in.Metadata.Name, enable)
				if err != nil {
					t.Errorf("%s: %s: %v", file, in.Metadata.Name, err)
					continue
				}
				if changed != (in.SSLEnabled() != enable) {
					t.Errorf("%s: %s: enable %v: changed = %v with ssl %s", file, in.Metadata.Name, enable, changed, in.Spec.SSL)
				}
				if n := changedLines(src, out); changed && n != 1 {
					t.Errorf("%s: %s: %d lines changed, want 1", file, in.Metadata.Name, n)
				}
				checkSSL(t, out, in.Metadata.Name, enable)
			}
		}
	}
}

func FuzzSetSSL(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/edit/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "orders-db", true)
		f.Add(data, "payments-db", false)
	}
	f.Add([]byte(valid), "orders-db", false)
	f.Add([]byte("\uFEFF"+valid), "orders-db", false)
	f.Add([]byte(strings.ReplaceAll(valid, "\n", "\r")), "orders-db", false)
	f.Add([]byte(strings.Replace(valid, "team: payments}", "team: payments} # \u2028", 1)), "orders-db", false)
	f.Fuzz(func(t *testing.T, data []byte, name string, enable bool) {
		ins, err := Parse("f.yaml", data, DefaultDefaults())
		if err != nil {
			return
		}
		out, changed, err := SetSSL(data, name, enable)
		if err != nil {
			return
		}
		if !changed && !bytes.Equal(out, data) {
			t.Fatalf("unchanged, but the output differs:\n%q\n%q", data, out)
		}
		got, err := Parse("f.yaml", out, DefaultDefaults())
		if err != nil {
			t.Fatalf("output does not parse: %v\ninput:  %q\noutput: %q", err, data, out)
		}
		if len(got) != len(ins) {
			t.Fatalf("%d instances after the edit, %d before", len(got), len(ins))
		}
		for i, in := range got {
			if in.Metadata.Name != ins[i].Metadata.Name {
				t.Fatalf("instance %d is %s after the edit, %s before", i, in.Metadata.Name, ins[i].Metadata.Name)
			}
			wantSSL := ins[i].SSLEnabled()
			if in.Metadata.Name == name {
				wantSSL = enable
			}
			if in.SSLEnabled() != wantSSL {
				t.Fatalf("instance %s: spec.ssl %s after the edit (enable %v asked for %s)\ninput:  %q\noutput: %q", in.Metadata.Name, in.Spec.SSL, enable, name, data, out)
			}
		}
	})
}
