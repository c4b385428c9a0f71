package policy

import (
	"context"
	"fmt"
	"testing"
)

// benchPolicy is three rules of the kind a fleet has: a string deny, a
// structured violation and a warning.
const benchPolicy = `package main

deny contains msg if {
	input.metadata.labels.env == "production"
	input.spec.ssl != "enabled"
	msg := sprintf("%s: production instances must have ssl enabled", [input.metadata.name])
}

violation_rpc contains {"msg": msg, "severity": "high"} if {
	input.spec.rpcEncryption == "disabled"
	input.metadata.labels.env != "dev"
	msg := sprintf("%s: rpcEncryption is required outside dev", [input.metadata.name])
}

warn_ttl contains msg if {
	not input.spec.tls.ttl
	msg := sprintf("%s: spec.tls.ttl is not set", [input.metadata.name])
}
`

// benchDocuments returns n instance documents, a third of them denied.
func benchDocuments(tb testing.TB, n int) []Document {
	tb.Helper()
	envs := []string{"production", "staging", "dev"}
	docs := make([]Document, n)
	for i := range docs {
		name := fmt.Sprintf("db-%05d", i)
		ssl, rpc, tls := "enabled", "enabled", `, "tls": {"ttl": "720h", "minVersion": "1.2"}`
		if i%3 == 0 {
			ssl, rpc, tls = "disabled", "disabled", ""
		}
		docs[i] = doc(tb, name, "instances/"+name+".yaml", fmt.Sprintf(`{
			"apiVersion": "reconciler/v1", "kind": "Instance",
			"metadata": {"name": %q, "labels": {"env": %q, "team": "payments"}},
			"spec": {
				"datastore": {"type": "mysql", "version": "8.0"},
				"hosts": [%q, "10.0.%d.%d"],
				"ssl": %q, "rpcEncryption": %q%s
			}
		}`, name, envs[i%len(envs)], name+".db.internal", i/256, i%256, ssl, rpc, tls))
	}
	return docs
}

// BenchmarkEvaluate evaluates 10,000 documents against a three-rule
// policy; one op is the whole fleet.
func BenchmarkEvaluate(b *testing.B) {
	e := mustLoad(b, policyFS(map[string]string{"main.rego": benchPolicy}))
	docs := benchDocuments(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Evaluate(ctx, docs)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Instances[0].Deny) == 0 {
			b.Fatal("db-00000 not denied")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(docs)), "ns/doc")
}

// BenchmarkEvaluateWithFleet adds a fleet-scope rule over the same fleet.
func BenchmarkEvaluateWithFleet(b *testing.B) {
	e := mustLoad(b, policyFS(map[string]string{
		"main.rego": benchPolicy,
		"fleet.rego": `package fleet
warn_coverage contains sprintf("coverage %d of %d", [enabled, count(input.instances)]) if {
	enabled := count([i | some i in input.instances; i.spec.ssl == "enabled"])
	enabled * 100 < count(input.instances) * 95
}`,
	}))
	docs := benchDocuments(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Evaluate(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad parses and compiles the policy and prepares its query.
func BenchmarkLoad(b *testing.B) {
	fsys := policyFS(map[string]string{"main.rego": benchPolicy})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(ctx, fsys, "policies"); err != nil {
			b.Fatal(err)
		}
	}
}
