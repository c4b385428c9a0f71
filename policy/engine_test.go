package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// evaluateCase is a policy directory, documents and the verdicts expected.
// The conftest compatibility test (build tag conftestcompat) runs conftest
// on the same cases.
type evaluateCase struct {
	name       string
	policies   map[string]string
	namespaces []string // WithNamespaces
	all        bool     // WithAllNamespaces
	docs       func(testing.TB) []Document
	want       []Verdict
	fleet      Verdict
	// conftestSkip says why conftest cannot run the case, if it cannot.
	conftestSkip string
}

func (c evaluateCase) options() []Option {
	var opts []Option
	if len(c.namespaces) > 0 {
		opts = append(opts, WithNamespaces(c.namespaces...))
	}
	if c.all {
		opts = append(opts, WithAllNamespaces())
	}
	return opts
}

func prodDocs(t testing.TB) []Document {
	return []Document{
		instance(t, "orders-db", "production", "disabled"),
		instance(t, "cache", "dev", "disabled"),
	}
}

func oneDoc(t testing.TB) []Document { return []Document{instance(t, "a", "dev", "enabled")} }

var evaluateCases = []evaluateCase{
	{
		name: "deny strings are failures of the instance that produced them",
		policies: map[string]string{"main.rego": `package main
deny contains sprintf("%s: ssl is required", [input.metadata.name]) if {
	input.metadata.labels.env == "production"
	input.spec.ssl != "enabled"
}`},
		docs: prodDocs,
		want: []Verdict{
			{Deny: []Message{msg("main", "deny", "orders-db: ssl is required")}},
			{},
		},
	},
	{
		name: "suffixed deny, violation and warn rules are all reported",
		policies: map[string]string{"main.rego": `package main
deny_ssl contains "ssl" if input.spec.ssl == "disabled"
deny_ssl_required_in_prod contains "ssl in prod" if input.metadata.labels.env == "production"
violation contains "violation" if true
violation_rpc_2 contains "violation 2" if true
warn contains "warn" if true
warn_ttl contains "ttl" if true
`},
		docs: func(t testing.TB) []Document { return []Document{instance(t, "a", "production", "disabled")} },
		want: []Verdict{{
			Deny: []Message{
				msg("main", "deny_ssl", "ssl"),
				msg("main", "deny_ssl_required_in_prod", "ssl in prod"),
				msg("main", "violation", "violation"),
				msg("main", "violation_rpc_2", "violation 2"),
			},
			Warn: []Message{msg("main", "warn", "warn"), msg("main", "warn_ttl", "ttl")},
		}},
	},
	{
		name: "rules named outside conftest's conventions are not results",
		policies: map[string]string{"main.rego": `package main
denied contains "denied" if true
deny_ contains "trailing underscore" if true
warning contains "warning" if true
violations contains "violations" if true
Deny contains "capital" if true
deny_ok contains "ok" if true
`},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{msg("main", "deny_ok", "ok")}}},
	},
	{
		name: "structured violation keeps its other keys as metadata and _loc as location",
		policies: map[string]string{"main.rego": `package main
violation contains {
	"msg": "rpc encryption is off",
	"severity": "high",
	"score": 7,
	"tags": ["rpc", "trove"],
	"_loc": {"file": "instances/a.yaml", "line": 3},
} if true
deny contains {"msg": "plain object"} if true
`},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{
			msg("main", "deny", "plain object"),
			{
				Msg: "rpc encryption is off", Namespace: "main", Rule: "violation",
				Location: &Location{File: "instances/a.yaml", Line: "3"},
				Metadata: map[string]any{"severity": "high", "score": json.Number("7"), "tags": []any{"rpc", "trove"}},
			},
		}}},
	},
	{
		name: "rule values that hold no messages are ignored as conftest does",
		policies: map[string]string{"main.rego": `package main
deny_count := 3
deny_object := {"a": "b"}
deny_mixed contains x if some x in [1, true, null, ["nested"], "kept"]
deny_array := ["from an array"]
`},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{
			msg("main", "deny_array", "from an array"),
			msg("main", "deny_mixed", "kept"),
		}}},
	},
	{
		name: "an undefined rule yields no message",
		policies: map[string]string{"main.rego": `package main
deny contains "never" if input.nope == 1
warn contains "never" if input.nope == 1
`},
		docs: oneDoc,
		want: []Verdict{{}},
	},
	{
		name: "an exception names a rule by its suffix and excepts all its results",
		policies: map[string]string{"main.rego": `package main
deny_ssl contains "ssl 1" if input.spec.ssl == "disabled"
deny_ssl contains "ssl 2" if input.spec.ssl == "disabled"
warn_ssl contains "ssl warning" if true
deny_rpc contains "rpc" if true
exception contains ["ssl"] if input.metadata.name == "orders-db"
`},
		docs: prodDocs,
		want: []Verdict{
			{
				Deny: []Message{msg("main", "deny_rpc", "rpc")},
				Exceptions: []Message{
					msg("main", "deny_ssl", `data.main.exception[_][_] == "ssl"`),
					msg("main", "warn_ssl", `data.main.exception[_][_] == "ssl"`),
				},
			},
			{
				Deny: []Message{msg("main", "deny_rpc", "rpc"), msg("main", "deny_ssl", "ssl 1"), msg("main", "deny_ssl", "ssl 2")},
				Warn: []Message{msg("main", "warn_ssl", "ssl warning")},
			},
		},
	},
	{
		name: "an empty exception name excepts the unsuffixed deny, violation and warn",
		policies: map[string]string{"main.rego": `package main
deny contains "deny" if true
violation contains "violation" if true
warn contains "warn" if true
deny_kept contains "kept" if true
exception contains [""] if true
`},
		docs: oneDoc,
		want: []Verdict{{
			Deny: []Message{msg("main", "deny_kept", "kept")},
			Exceptions: []Message{
				msg("main", "deny", `data.main.exception[_][_] == ""`),
				msg("main", "violation", `data.main.exception[_][_] == ""`),
				msg("main", "warn", `data.main.exception[_][_] == ""`),
			},
		}},
	},
	{
		name: "an exception is reported once per match, even for a rule that did not fire",
		policies: map[string]string{"main.rego": `package main
deny_ssl contains "never" if false
exception contains ["ssl"] if true
exception contains ["ssl", "rpc", "ssl"] if true
exception contains ["unknown"] if true
`},
		docs: oneDoc,
		want: []Verdict{{Exceptions: []Message{
			msg("main", "deny_ssl", `data.main.exception[_][_] == "ssl"`),
			msg("main", "deny_ssl", `data.main.exception[_][_] == "ssl"`),
			msg("main", "deny_ssl", `data.main.exception[_][_] == "ssl"`),
		}}},
	},
	{
		name: "exception elements are iterated as conftest's exception[_][_] query does",
		policies: map[string]string{"main.rego": `package main
deny_ssl contains "ssl" if true
deny_rpc contains "rpc" if true
deny_ttl contains "ttl" if true
exception contains {"reason": "rpc"} if true
exception contains "ttl" if true
`},
		docs: oneDoc,
		want: []Verdict{{
			Deny:       []Message{msg("main", "deny_ssl", "ssl"), msg("main", "deny_ttl", "ttl")},
			Exceptions: []Message{msg("main", "deny_rpc", `data.main.exception[_][_] == "rpc"`)},
		}},
	},
	{
		name: "exceptions apply within their namespace only",
		policies: map[string]string{
			"main.rego":  "package main\ndeny_ssl contains \"main\" if true\nexception contains [\"ssl\"] if true\n",
			"other.rego": "package other\ndeny_ssl contains \"other\" if true\n",
		},
		all:  true,
		docs: oneDoc,
		want: []Verdict{{
			Deny:       []Message{msg("other", "deny_ssl", "other")},
			Exceptions: []Message{msg("main", "deny_ssl", `data.main.exception[_][_] == "ssl"`)},
		}},
	},
	{
		name: "JSON and YAML data files are merged into data by directory",
		policies: map[string]string{
			"main.rego": `package main
deny contains sprintf("%s owns %s", [data.teams.payments.owner, data.tls.minimum.mysql]) if true
deny contains sprintf("nested %v", [data.tls.extra.deep.x]) if true
`,
			"teams.yaml":          "teams:\n  payments: {owner: alice}\n",
			"tls/minimum.json":    `{"minimum": {"mysql": "1.2"}}`,
			"tls/extra/deep.json": `{"deep": {"x": 1}}`,
			"README.md":           "not data",
		},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{msg("main", "deny", "alice owns 1.2"), msg("main", "deny", "nested 1")}}},
	},
	{
		name: "only the default namespace main is evaluated by default",
		policies: map[string]string{
			"main.rego":  "package main\ndeny contains \"main\" if true\n",
			"other.rego": "package other\ndeny contains \"other\" if true\n",
		},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{msg("main", "deny", "main")}}},
	},
	{
		name: "explicit namespaces are evaluated and main is not",
		policies: map[string]string{
			"main.rego":  "package main\ndeny contains \"main\" if true\n",
			"k8s.rego":   "package k8s.simple\ndeny contains \"k8s.simple\" if true\n",
			"k8s_2.rego": "package k8s.simple.deployment\nwarn contains \"k8s.simple.deployment\" if true\n",
			"other.rego": "package other\ndeny contains \"other\" if true\n",
		},
		namespaces: []string{"k8s.simple", "other"},
		docs:       oneDoc,
		want: []Verdict{{Deny: []Message{
			msg("k8s.simple", "deny", "k8s.simple"),
			msg("other", "deny", "other"),
		}}},
	},
	{
		name: "a quoted package name is requested as written",
		policies: map[string]string{
			"main.rego":   "package main\ndeny contains \"main\" if true\n",
			"quoted.rego": "package x[\"y-z\"]\ndeny contains \"quoted\" if true\n",
		},
		namespaces:   []string{`x["y-z"]`},
		conftestSkip: "conftest's --namespace flag parses its value as CSV and refuses the quotes",
		docs:         oneDoc,
		want:         []Verdict{{Deny: []Message{msg(`x["y-z"]`, "deny", "quoted")}}},
	},
	{
		name: "a glob matches namespaces with path.Match, dots included",
		policies: map[string]string{
			"main.rego": "package main\ndeny contains \"main\" if true\n",
			"k8s.rego":  "package k8s.simple\ndeny contains \"k8s.simple\" if true\n",
			"k8s2.rego": "package k8s.simple.deployment\nwarn contains \"k8s.simple.deployment\" if true\n",
			"k8x.rego":  "package k8x\ndeny contains \"k8x\" if true\n",
		},
		namespaces: []string{"k8s.*"},
		docs:       oneDoc,
		want: []Verdict{{
			Deny: []Message{msg("k8s.simple", "deny", "k8s.simple")},
			Warn: []Message{msg("k8s.simple.deployment", "warn", "k8s.simple.deployment")},
		}},
	},
	{
		name: "all namespaces evaluates every package with rules but the fleet one",
		policies: map[string]string{
			"main.rego":  "package main\ndeny contains \"main\" if true\n",
			"other.rego": "package other\nwarn contains \"other\" if true\n",
			"lib.rego":   "package lib\nhelper := true\n",
			"fleet.rego": "package fleet\nwarn contains \"fleet\" if true\n",
		},
		all:  true,
		docs: oneDoc,
		want: []Verdict{{
			Deny: []Message{msg("main", "deny", "main")},
			Warn: []Message{msg("other", "warn", "other")},
		}},
		fleet: Verdict{Warn: []Message{msg("fleet", "warn", "fleet")}},
	},
	{
		name: "rules of one namespace may be spread over files and bodies",
		policies: map[string]string{
			"a.rego": "package main\ndeny contains \"a\" if true\n",
			"b.rego": "package main\ndeny contains \"b\" if true\ndeny contains \"c\" if true\n",
		},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{msg("main", "deny", "a"), msg("main", "deny", "b"), msg("main", "deny", "c")}}},
	},
	{
		name: "test files are loaded and do no harm",
		policies: map[string]string{
			"main.rego":      "package main\ndeny contains \"main\" if true\n",
			"main_test.rego": "package main\ntest_deny if { deny[\"main\"] }\n",
		},
		docs: oneDoc,
		want: []Verdict{{Deny: []Message{msg("main", "deny", "main")}}},
	},
	{
		name:         "no documents, no verdicts",
		policies:     map[string]string{"main.rego": "package main\ndeny contains \"x\" if true\n"},
		docs:         func(testing.TB) []Document { return nil },
		want:         []Verdict{},
		conftestSkip: "conftest needs an input file",
	},
}

func TestEvaluate(t *testing.T) {
	for _, tt := range evaluateCases {
		t.Run(tt.name, func(t *testing.T) {
			e := mustLoad(t, policyFS(tt.policies), tt.options()...)
			got, err := e.Evaluate(context.Background(), tt.docs(t))
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if diff := cmp.Diff(&Result{Instances: tt.want, Fleet: tt.fleet}, got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEvaluateFleetRepository evaluates the example fleet in
// testdata/fleet, the same files the conftest compatibility test runs
// conftest on.
func TestEvaluateFleetRepository(t *testing.T) {
	fsys := os.DirFS("testdata/fleet")
	docs := readInstances(t, fsys, "instances")
	var names []string
	for _, d := range docs {
		names = append(names, d.Name)
	}
	if diff := cmp.Diff([]string{"dev-cache", "legacy-db", "orders-db", "reports-db"}, names); diff != "" {
		t.Fatalf("instances (-want +got):\n%s", diff)
	}

	sharedHost := Message{
		Msg: "host 10.0.4.17 is shared by legacy-db, orders-db", Namespace: "fleet", Rule: "deny_shared_host",
		Metadata: map[string]any{"instances": []any{"legacy-db", "orders-db"}},
	}
	coverage := msg("fleet", "warn_coverage", "ssl coverage of production is 1 of 3 instances, below 95%")
	main := Result{
		Instances: []Verdict{
			{ // dev-cache
				Deny: []Message{msg("main", "deny_hosts", "dev-cache: spec.hosts must name at least one host")},
				Warn: []Message{
					msg("main", "warn", "dev-cache: team sandbox is not in teams.yaml"),
					msg("main", "warn_ttl", "dev-cache: spec.tls.ttl is not set; the configured default applies"),
				},
			},
			{ // legacy-db
				Deny:       []Message{sharedHost},
				Exceptions: []Message{msg("main", "violation_rpc", `data.main.exception[_][_] == "rpc"`)},
			},
			{ // orders-db
				Deny: []Message{
					sharedHost,
					msg("main", "deny", "orders-db: production instances must have ssl enabled"),
					{
						Msg: "orders-db: rpcEncryption is required outside dev", Namespace: "main", Rule: "violation_rpc",
						Metadata: map[string]any{"severity": "high", "team": "payments"},
					},
				},
				Warn: []Message{msg("main", "warn_ttl", "orders-db: spec.tls.ttl is not set; the configured default applies")},
			},
			{ // reports-db
				Exceptions: []Message{
					msg("main", "deny", `data.main.exception[_][_] == ""`),
					msg("main", "warn", `data.main.exception[_][_] == ""`),
				},
			},
		},
		Fleet: Verdict{Warn: []Message{coverage}},
	}
	prodTLS := Result{
		Instances: []Verdict{
			{},
			{Deny: []Message{sharedHost}},
			{Deny: []Message{sharedHost, {
				Msg: "orders-db: tls.minVersion 1.1 is below 1.2 for mysql", Namespace: "prod.tls", Rule: "deny_min_version",
				Metadata: map[string]any{"minimum": "1.2"},
			}}},
			{Deny: []Message{{
				Msg: "reports-db: tls.minVersion 1.2 is below 1.3 for postgresql", Namespace: "prod.tls", Rule: "deny_min_version",
				Metadata: map[string]any{"minimum": "1.3"},
			}}},
		},
		Fleet: Verdict{Warn: []Message{coverage}},
	}
	all := Result{Instances: make([]Verdict, 4), Fleet: main.Fleet}
	for i := range all.Instances {
		all.Instances[i].append(main.Instances[i])
		all.Instances[i].append(prodTLS.Instances[i])
		if i == 1 || i == 2 {
			all.Instances[i].Deny = all.Instances[i].Deny[1:] // the shared host once
		}
		all.Instances[i].sort()
	}
	rpcWarn := func(name string) Message {
		return msg("prod.rpc", "warn_agent", name+": rpc encryption is off")
	}
	for i, name := range []string{"dev-cache", "legacy-db", "orders-db"} {
		all.Instances[i].Warn = append(all.Instances[i].Warn, rpcWarn(name))
	}

	tests := []struct {
		name string
		opts []Option
		want Result
	}{
		{name: "default namespace", want: main},
		{name: "explicit namespace", opts: []Option{WithNamespaces("prod.tls")}, want: prodTLS},
		{name: "all namespaces", opts: []Option{WithAllNamespaces()}, want: all},
		{name: "globs select the same as all namespaces", opts: []Option{WithNamespaces("prod.*", "m*")}, want: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustLoad(t, fsys, tt.opts...)
			got, err := e.Evaluate(context.Background(), docs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	tests := []struct {
		name     string
		policies map[string]string
		opts     []Option
		docs     func(*testing.T) []Document
		want     *EvalError // Err compared by its text
	}{
		{
			name: "conflicting values of a complete rule name the instance's file",
			policies: map[string]string{"main.rego": `package main
level := "high" if input.spec.ssl == "disabled"
level := "low" if input.metadata.labels.env == "dev"
deny contains level if true
`},
			docs: func(t *testing.T) []Document {
				return []Document{instance(t, "ok", "production", "enabled"), instance(t, "cache", "dev", "disabled")}
			},
			want: &EvalError{Namespace: "main", Name: "cache", File: "instances/cache.yaml", Err: errors.New(
				"policies/main.rego:3: eval_conflict_error: rule data.main.level produced conflicting values:\n" +
					"  \"high\" at policies/main.rego:2\n  \"low\" at policies/main.rego:3")},
		},
		{
			name: "with builtin errors shown, a failing builtin is an error",
			policies: map[string]string{"main.rego": `package main
deny contains "old" if to_number(input.spec.ssl) < 2
`},
			opts: []Option{WithBuiltinErrors()},
			docs: func(t *testing.T) []Document { return []Document{instance(t, "a", "dev", "enabled")} },
			want: &EvalError{Namespace: "main", Name: "a", File: "instances/a.yaml", Err: errors.New(
				`policies/main.rego:2: eval_builtin_error: to_number: strconv.ParseFloat: parsing "enabled": invalid syntax`)},
		},
		{
			name:     "a structured result without a string msg is an error",
			policies: map[string]string{"main.rego": "package main\nviolation contains {\"message\": \"typo\"} if true\n"},
			docs:     func(t *testing.T) []Document { return []Document{instance(t, "a", "dev", "enabled")} },
			want: &EvalError{Namespace: "main", Name: "a", File: "instances/a.yaml", Err: errors.New(
				`rule main.violation: result {"message":"typo"}: "msg" must be present and a string`)},
		},
		{
			name:     "a document without input is an error",
			policies: map[string]string{"main.rego": "package main\ndeny contains \"x\" if true\n"},
			docs:     func(*testing.T) []Document { return []Document{{Name: "a", File: "instances/a.yaml"}} },
			want:     &EvalError{Name: "a", File: "instances/a.yaml", Err: errors.New("document has no input")},
		},
		{
			name: "the first failing document in order is reported",
			policies: map[string]string{"main.rego": `package main
deny contains "x" if to_number(input.metadata.name) > 0
`},
			opts: []Option{WithBuiltinErrors(), WithParallelism(4)},
			docs: func(t *testing.T) []Document {
				var docs []Document
				for i := range 200 {
					name := fmt.Sprint(i)
					if i >= 150 {
						name = fmt.Sprintf("bad-%d", i)
					}
					docs = append(docs, instance(t, name, "dev", "enabled"))
				}
				return docs
			},
			want: &EvalError{Namespace: "main", Name: "bad-150", File: "instances/bad-150.yaml", Err: errors.New(
				`policies/main.rego:2: eval_builtin_error: to_number: strconv.ParseFloat: parsing "bad-150": invalid syntax`)},
		},
		{
			name: "a fleet result whose instance is not a name is an error",
			policies: map[string]string{"fleet.rego": `package fleet
deny contains {"msg": "m", "instance": 1} if true
`},
			docs: func(t *testing.T) []Document { return []Document{instance(t, "a", "dev", "enabled")} },
			want: &EvalError{Namespace: "fleet", Err: errors.New(`rule deny: result "m": "instance" must be an instance name (a string), not 1`)},
		},
		{
			name: "a fleet result whose instances is not an array of names is an error",
			policies: map[string]string{"fleet.rego": `package fleet
deny contains {"msg": "m", "instances": "a"} if true
`},
			docs: func(t *testing.T) []Document { return []Document{instance(t, "a", "dev", "enabled")} },
			want: &EvalError{Namespace: "fleet", Err: errors.New(`rule deny: result "m": "instances" must be an array of instance names, not "a"`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustLoad(t, policyFS(tt.policies), tt.opts...)
			res, err := e.Evaluate(context.Background(), tt.docs(t))
			if err == nil {
				t.Fatalf("Evaluate() = %+v, want an error", res)
			}
			var got *EvalError
			if !errors.As(err, &got) {
				t.Fatalf("Evaluate() error %T %v, want *EvalError", err, err)
			}
			if diff := cmp.Diff(tt.want.Error(), got.Error()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if errors.Unwrap(err) == nil {
				t.Errorf("errors.Unwrap(%v) = nil, want the cause", err)
			}
		})
	}
}

func TestEvaluateHidesTheEnvironment(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "s.secret")
	e := mustLoad(t, policyFS(map[string]string{"main.rego": `package main
deny contains sprintf("runtime %v", [opa.runtime()]) if true
deny contains opa.runtime().env.VAULT_TOKEN if true
`}))
	got, err := e.Evaluate(context.Background(), oneDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{Instances: []Verdict{{Deny: []Message{msg("main", "deny", "runtime {}")}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
	}
}

func TestEvaluateBuiltinErrorsAreUndefinedByDefault(t *testing.T) {
	e := mustLoad(t, policyFS(map[string]string{"main.rego": `package main
deny contains "old" if to_number(input.spec.ssl) < 2
`}))
	got, err := e.Evaluate(context.Background(), []Document{instance(t, "a", "dev", "enabled")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Result{Instances: []Verdict{{}}}, got); diff != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
	}
}

func TestEvaluateCanceled(t *testing.T) {
	e := mustLoad(t, policyFS(map[string]string{"main.rego": "package main\ndeny contains \"x\" if true\n"}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Evaluate(ctx, []Document{instance(t, "a", "dev", "enabled")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Evaluate() error = %v, want context.Canceled", err)
	}
}

// TestEvaluateParallelIsDeterministic evaluates many documents with many
// workers, twice, and with one worker: the results must be identical.
func TestEvaluateParallelIsDeterministic(t *testing.T) {
	fsys := policyFS(map[string]string{"main.rego": `package main
deny contains sprintf("%s: ssl", [input.metadata.name]) if input.spec.ssl == "disabled"
warn contains sprintf("%s: b", [input.metadata.name]) if true
warn contains sprintf("%s: a", [input.metadata.name]) if true
`})
	docs := benchDocuments(t, 2000)
	var results []*Result
	for _, p := range []int{1, 8, 8} {
		got, err := mustLoad(t, fsys, WithParallelism(p)).Evaluate(context.Background(), docs)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, got)
	}
	for _, got := range results[1:] {
		if diff := cmp.Diff(results[0], got); diff != "" {
			t.Fatalf("parallel result differs (-sequential +parallel):\n%s", diff)
		}
	}
	if got := results[0].Instances[3].Warn; len(got) != 2 || !strings.HasSuffix(got[0].Msg, ": a") {
		t.Errorf("warnings not sorted: %+v", got)
	}
}

func TestEngineNamespaces(t *testing.T) {
	e := mustLoad(t, policyFS(map[string]string{
		"b.rego":     "package b\ndeny contains \"b\" if true\n",
		"a.rego":     "package a.x\nwarn contains \"a\" if true\n",
		"fleet.rego": "package fleet\ndeny contains \"f\" if true\n",
	}), WithAllNamespaces())
	if diff := cmp.Diff([]string{"a.x", "b"}, e.Namespaces()); diff != "" {
		t.Errorf("Namespaces() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoggerReceivesSummariesAndPrintOutput(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := mustLoad(t, policyFS(map[string]string{"main.rego": `package main
deny contains "x" if {
	print("looking at", input.metadata.name)
}
`}), WithLogger(log))
	if _, err := e.Evaluate(context.Background(), oneDoc(t)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`msg="loaded policies" dir=policies modules=1 namespaces=main fleet=false`,
		`msg="policy print" namespace=main file=instances/a.yaml location=policies/main.rego:3 msg="looking at a"`,
		`msg="evaluated policies" documents=1 denied=1 fleet_denied=0`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
