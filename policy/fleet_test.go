package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEvaluateFleet(t *testing.T) {
	docs := func(t *testing.T) []Document {
		return []Document{
			instance(t, "orders-db", "production", "disabled"),
			instance(t, "cache", "dev", "disabled"),
			instance(t, "reports-db", "production", "enabled"),
		}
	}
	withInstances := func(m Message, names ...any) Message {
		m.Metadata = map[string]any{"instances": names}
		return m
	}
	withInstance := func(m Message, name string) Message {
		m.Metadata = map[string]any{"instance": name}
		return m
	}
	tests := []struct {
		name     string
		policies map[string]string
		opts     []Option
		want     Result
	}{
		{
			name: "a message naming an instance denies that instance",
			policies: map[string]string{"fleet.rego": `package fleet
deny contains {"msg": sprintf("%s: production must be encrypted", [i.metadata.name]), "instance": i.metadata.name} if {
	some i in input.instances
	i.metadata.labels.env == "production"
	i.spec.ssl != "enabled"
}`},
			want: Result{Instances: []Verdict{
				{Deny: []Message{withInstance(msg("fleet", "deny", "orders-db: production must be encrypted"), "orders-db")}},
				{},
				{},
			}},
		},
		{
			name: "a message naming instances is in each of their verdicts",
			policies: map[string]string{"fleet.rego": `package fleet
deny_plaintext contains {"msg": "plaintext instances", "instances": names} if {
	names := [i.metadata.name | some i in input.instances; i.spec.ssl == "disabled"]
	count(names) > 1
}
warn contains {"msg": "dev instance", "instances": ["cache", "cache"]} if true
`},
			want: Result{Instances: []Verdict{
				{Deny: []Message{withInstances(msg("fleet", "deny_plaintext", "plaintext instances"), "orders-db", "cache")}},
				{
					Deny: []Message{withInstances(msg("fleet", "deny_plaintext", "plaintext instances"), "orders-db", "cache")},
					Warn: []Message{withInstances(msg("fleet", "warn", "dev instance"), "cache", "cache")},
				},
				{},
			}},
		},
		{
			name: "a message naming no instance, or only unknown ones, concerns the fleet",
			policies: map[string]string{"fleet.rego": `package fleet
deny_coverage contains "coverage below 95%" if true
deny_ghost contains {"msg": "ghost", "instance": "ghost-db"} if true
warn_partly contains {"msg": "partly", "instances": ["ghost-db", "cache"]} if true
`},
			want: Result{
				Instances: []Verdict{{}, {Warn: []Message{withInstances(msg("fleet", "warn_partly", "partly"), "ghost-db", "cache")}}, {}},
				Fleet: Verdict{Deny: []Message{
					msg("fleet", "deny_coverage", "coverage below 95%"),
					withInstance(msg("fleet", "deny_ghost", "ghost"), "ghost-db"),
				}},
			},
		},
		{
			name: "fleet input is every document as written, in order",
			policies: map[string]string{"fleet.rego": `package fleet
warn contains concat(",", [sprintf("%s/%s", [i.metadata.name, i.spec.ssl]) | some i in input.instances]) if true
`},
			want: Result{
				Instances: []Verdict{{}, {}, {}},
				Fleet:     Verdict{Warn: []Message{msg("fleet", "warn", "orders-db/disabled,cache/disabled,reports-db/enabled")}},
			},
		},
		{
			name: "fleet exceptions except a fleet rule and are reported for the fleet",
			policies: map[string]string{"fleet.rego": `package fleet
deny_coverage contains "coverage below 95%" if true
deny_shared contains {"msg": "shared", "instance": "cache"} if true
exception contains ["coverage"] if true
`},
			want: Result{
				Instances: []Verdict{{}, {Deny: []Message{withInstance(msg("fleet", "deny_shared", "shared"), "cache")}}, {}},
				Fleet: Verdict{Exceptions: []Message{
					msg("fleet", "deny_coverage", `data.fleet.exception[_][_] == "coverage"`),
				}},
			},
		},
		{
			name: "fleet and per-instance messages of one instance are merged and sorted",
			policies: map[string]string{
				"main.rego":  "package main\ndeny contains sprintf(\"%s: main\", [input.metadata.name]) if input.spec.ssl == \"disabled\"\n",
				"fleet.rego": "package fleet\ndeny contains {\"msg\": \"cache: fleet\", \"instance\": \"cache\"} if true\n",
			},
			want: Result{Instances: []Verdict{
				{Deny: []Message{msg("main", "deny", "orders-db: main")}},
				{Deny: []Message{withInstance(msg("fleet", "deny", "cache: fleet"), "cache"), msg("main", "deny", "cache: main")}},
				{},
			}},
		},
		{
			name: "the fleet namespace can be renamed, and package fleet is then an ordinary one",
			policies: map[string]string{
				"global.rego": "package global\nwarn contains sprintf(\"%d instances\", [count(input.instances)]) if true\n",
				"fleet.rego":  "package fleet\ndeny contains \"per instance\" if input.metadata.name == \"cache\"\n",
			},
			opts: []Option{WithFleetNamespace("global"), WithAllNamespaces()},
			want: Result{
				Instances: []Verdict{{}, {Deny: []Message{msg("fleet", "deny", "per instance")}}, {}},
				Fleet:     Verdict{Warn: []Message{msg("global", "warn", "3 instances")}},
			},
		},
		{
			name: "a fleet of only fleet rules needs no main package",
			policies: map[string]string{
				"fleet.rego": "package fleet\nwarn contains \"fleet only\" if true\n",
			},
			want: Result{Instances: []Verdict{{}, {}, {}}, Fleet: Verdict{Warn: []Message{msg("fleet", "warn", "fleet only")}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustLoad(t, policyFS(tt.policies), tt.opts...)
			got, err := e.Evaluate(context.Background(), docs(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateFleetAttributesToEveryDocumentOfAName(t *testing.T) {
	// specs rejects duplicate names; should two documents still share one,
	// a fleet message that names it denies both rather than picking one.
	e := mustLoad(t, policyFS(map[string]string{
		"fleet.rego": "package fleet\ndeny contains {\"msg\": \"dup\", \"instance\": \"a\"} if true\n",
	}))
	got, err := e.Evaluate(context.Background(), []Document{
		instance(t, "a", "dev", "enabled"), instance(t, "b", "dev", "enabled"), instance(t, "a", "dev", "enabled"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, true} {
		if got.Instances[i].Denied() != want {
			t.Errorf("instance %d denied = %v, want %v", i, got.Instances[i].Denied(), want)
		}
	}
	if !got.Denied() {
		t.Error("Result.Denied() = false, want true")
	}
}
