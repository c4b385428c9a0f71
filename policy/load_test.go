package policy

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name     string
		policies map[string]string
		want     []Problem
	}{
		{
			name: "parse errors name every broken file and line",
			policies: map[string]string{
				"a.rego":  "package main\n\ndeny contains msg if {\n\tmsg := \n}\n",
				"b.rego":  "package other\n\nwarn contains \"x\" if {\n",
				"ok.rego": "package main\ndeny contains \"ok\" if true\n",
			},
			want: []Problem{
				{File: "policies/a.rego", Line: 5, Message: "rego_parse_error: unexpected } token"},
				{File: "policies/b.rego", Line: 4, Message: "rego_parse_error: unexpected eof token"},
			},
		},
		{
			name: "v0 syntax is a parse error: policies are Rego v1",
			policies: map[string]string{
				"main.rego": "package main\n\ndeny[msg] {\n\tmsg := \"x\"\n}\n",
			},
			want: []Problem{
				{File: "policies/main.rego", Line: 3, Message: "rego_parse_error: `contains` keyword is required for partial set rules"},
				{File: "policies/main.rego", Line: 3, Message: "rego_parse_error: `if` keyword is required before rule body"},
			},
		},
		{
			// OPA compiles in stages and stops after the first that fails, so
			// errors of a later stage show once these are fixed.
			name: "compile errors name every file and line, beyond OPA's limit of ten",
			policies: map[string]string{
				"a.rego": "package main\n\n" + strings.Repeat("deny contains x if true\n", 11),
				"b.rego": "package b\n\nwarn contains unknown if true\n",
			},
			want: func() []Problem {
				var ps []Problem
				for line := 3; line < 14; line++ {
					ps = append(ps, Problem{File: "policies/a.rego", Line: line, Message: "rego_unsafe_var_error: var x is unsafe"})
				}
				return append(ps, Problem{File: "policies/b.rego", Line: 3, Message: "rego_unsafe_var_error: var unknown is unsafe"})
			}(),
		},
		{
			name: "deny if without contains is rejected, as every boolean reported rule",
			policies: map[string]string{
				"main.rego": `package main

deny if {
	input.spec.ssl == "disabled"
}

deny_rpc[msg] if {
	msg := "rpc"
}

warn_ttl := true

violation contains "fine" if true
deny_fine contains msg if { msg := "x" }
allow if true
`,
				"fleet.rego": "package fleet\n\nwarn if true\n",
			},
			want: []Problem{
				{File: "policies/fleet.rego", Line: 3, Message: `rule warn uses "if" without "contains", so it produces no message and can never warn; write "warn contains msg if { ... }"`},
				{File: "policies/main.rego", Line: 3, Message: `rule deny uses "if" without "contains", so it produces no message and can never deny; write "deny contains msg if { ... }"`},
				{File: "policies/main.rego", Line: 7, Message: `rule deny_rpc[msg] uses "if" without "contains", so it produces no message and can never deny; write "deny_rpc contains msg if { ... }"`},
				{File: "policies/main.rego", Line: 11, Message: `rule warn_ttl uses "if" without "contains", so it produces no message and can never warn; write "warn_ttl contains msg if { ... }"`},
			},
		},
		{
			name: "a compile error and a boolean rule are reported together",
			policies: map[string]string{
				"main.rego": "package main\n\ndeny if true\n\nwarn contains x if true\n",
			},
			want: []Problem{
				{File: "policies/main.rego", Line: 3, Message: `rule deny uses "if" without "contains", so it produces no message and can never deny; write "deny contains msg if { ... }"`},
				{File: "policies/main.rego", Line: 5, Message: "rego_unsafe_var_error: var x is unsafe"},
			},
		},
		{
			name: "broken data files name their file and line",
			policies: map[string]string{
				"main.rego":      "package main\ndeny contains \"x\" if true\n",
				"bad.yaml":       "teams:\n  payments: {owner: alice}\n  broken: [\n",
				"sub/bad.json":   "{\n  \"a\": 1,\n  \"b\": ,\n}\n",
				"list.json":      `["not", "an", "object"]`,
				"list/list.json": `["under data.list, an array is fine"]`,
			},
			want: []Problem{
				{File: "policies/bad.yaml", Line: 3, Message: "error converting YAML to JSON: yaml: line 3: did not find expected node content"},
				{File: "policies/list.json", Message: "document must be of type object"},
				{File: "policies/sub/bad.json", Line: 3, Message: "invalid character ',' looking for beginning of value"},
			},
		},
		{
			name: "data files that overlap are a merge error",
			policies: map[string]string{
				"main.rego": "package main\ndeny contains \"x\" if true\n",
				"a.json":    `{"teams": {"payments": 1}}`,
				"b.yaml":    "teams:\n  payments: 2\n",
			},
			want: []Problem{
				{File: "policies/b.yaml", Message: "merge error: conflicting values at data.teams.payments, also defined in policies/a.json"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(context.Background(), policyFS(tt.policies), "policies")
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("Load() error = %v, want *Error", err)
			}
			if diff := cmp.Diff(tt.want, got.Problems); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}

			// Test reports the same problems: the tests could not run.
			_, err = Test(context.Background(), policyFS(tt.policies), "policies")
			var gotTest *Error
			if !errors.As(err, &gotTest) {
				t.Fatalf("Test() error = %v, want *Error", err)
			}
			if diff := cmp.Diff(tt.want, gotTest.Problems); diff != "" {
				t.Errorf("Test() problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	one := &Error{Problems: []Problem{{File: "policies/a.rego", Line: 3, Message: "rego_unsafe_var_error: var x is unsafe"}}}
	two := &Error{Problems: []Problem{
		{File: "policies/a.rego", Line: 3, Message: "rego_unsafe_var_error: var x is unsafe"},
		{File: "policies/b.json", Message: "document must be of type object"},
	}}
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{one, "policy error: policies/a.rego:3: rego_unsafe_var_error: var x is unsafe"},
		{two, "2 policy errors:\n  policies/a.rego:3: rego_unsafe_var_error: var x is unsafe\n  policies/b.json: document must be of type object"},
	} {
		if diff := cmp.Diff(tc.want, tc.err.Error()); diff != "" {
			t.Errorf("Error() mismatch (-want +got):\n%s", diff)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	main := "package main\ndeny contains \"x\" if true\n"
	tests := []struct {
		name   string
		fsys   fs.FS
		dir    string
		opts   []Option
		is     error
		wantIn string
	}{
		{
			name:   "a directory without policies is an error, never a pass",
			fsys:   policyFS(map[string]string{"teams.yaml": "teams: {}\n", "README.md": "policies go here"}),
			is:     ErrNoPolicies,
			wantIn: "no policies: no .rego file under policies",
		},
		{
			name:   "a missing directory is an error",
			fsys:   fstest.MapFS{"other/main.rego": {Data: []byte(main)}},
			is:     fs.ErrNotExist,
			wantIn: "read policies: open policies: file does not exist",
		},
		{
			name:   "a directory outside the fleet root is refused",
			fsys:   policyFS(map[string]string{"main.rego": main}),
			dir:    "../policies",
			wantIn: `read policies: invalid directory "../policies"`,
		},
		{
			name:   "the default namespace must exist without fleet rules",
			fsys:   policyFS(map[string]string{"other.rego": "package other\ndeny contains \"x\" if true\n"}),
			is:     ErrNoNamespace,
			wantIn: `no such policy namespace: "main" matches no package with deny, violation or warn rules; namespaces with rules: other`,
		},
		{
			name: "a requested namespace that does not exist is an error listing those that do",
			fsys: policyFS(map[string]string{
				"main.rego":  main,
				"k8s.rego":   "package k8s\nwarn contains \"x\" if true\n",
				"lib.rego":   "package lib\nx := 1\n",
				"fleet.rego": "package fleet\ndeny contains \"x\" if true\n",
			}),
			opts:   []Option{WithNamespaces("main", "prod")},
			is:     ErrNoNamespace,
			wantIn: `no such policy namespace: "prod" matches no package with deny, violation or warn rules; namespaces with rules: k8s, main`,
		},
		{
			name:   "a glob that matches nothing is an error",
			fsys:   policyFS(map[string]string{"main.rego": main}),
			opts:   []Option{WithNamespaces("prod.*")},
			is:     ErrNoNamespace,
			wantIn: `"prod.*" matches no package`,
		},
		{
			name:   "a package without reported rules is no namespace",
			fsys:   policyFS(map[string]string{"main.rego": main, "lib.rego": "package lib\nallow if true\n"}),
			opts:   []Option{WithNamespaces("lib")},
			is:     ErrNoNamespace,
			wantIn: `"lib" matches no package`,
		},
		{
			name:   "the fleet namespace cannot be requested per instance",
			fsys:   policyFS(map[string]string{"main.rego": main, "fleet.rego": "package fleet\ndeny contains \"x\" if true\n"}),
			opts:   []Option{WithNamespaces("fleet")},
			is:     ErrNoNamespace,
			wantIn: "fleet is the fleet namespace, evaluated once over every instance without being requested",
		},
		{
			name:   "all namespaces without any rule is an error",
			fsys:   policyFS(map[string]string{"lib.rego": "package lib\nallow if true\n"}),
			opts:   []Option{WithAllNamespaces()},
			is:     ErrNoNamespace,
			wantIn: "no package has deny, violation or warn rules",
		},
		{
			name:   "a malformed glob is an error",
			fsys:   policyFS(map[string]string{"main.rego": main}),
			opts:   []Option{WithNamespaces("main[")},
			is:     path.ErrBadPattern,
			wantIn: `match namespace pattern "main[": syntax error in pattern`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = "policies"
			}
			e, err := Load(context.Background(), tt.fsys, dir, tt.opts...)
			if err == nil {
				t.Fatalf("Load() = %v, want an error", e)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Load() error = %v, want errors.Is %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Load() error = %q, want it to contain %q", err, tt.wantIn)
			}
		})
	}
}
