package policy_test

import (
	"context"
	"fmt"
	"log"
	"testing/fstest"

	"github.com/reconciler-dev/reconciler/policy"
)

// A fleet repository with one per-instance rule and one fleet-scope rule;
// policies are read from the repository's fs.FS at a revision.
func Example() {
	fleet := fstest.MapFS{
		"policies/main.rego": {Data: []byte(`package main

deny_ssl contains msg if {
	input.metadata.labels.env == "production"
	input.spec.ssl != "enabled"
	msg := sprintf("%s: production instances must have ssl enabled", [input.metadata.name])
}
`)},
		"policies/fleet.rego": {Data: []byte(`package fleet

deny_shared_host contains {"msg": sprintf("host %s is shared", [host]), "instances": names} if {
	some host in {h | some i in input.instances; some h in i.spec.hosts}
	names := [i.metadata.name | some i in input.instances; host in i.spec.hosts]
	count(names) > 1
}
`)},
	}
	ctx := context.Background()
	engine, err := policy.Load(ctx, fleet, "policies")
	if err != nil {
		log.Fatal(err)
	}

	var docs []policy.Document
	for _, in := range []map[string]any{
		{"metadata": map[string]any{"name": "orders-db", "labels": map[string]any{"env": "production"}},
			"spec": map[string]any{"ssl": "disabled", "hosts": []any{"10.0.4.17"}}},
		{"metadata": map[string]any{"name": "cache", "labels": map[string]any{"env": "dev"}},
			"spec": map[string]any{"ssl": "disabled", "hosts": []any{"10.0.4.17"}}},
	} {
		name := in["metadata"].(map[string]any)["name"].(string)
		docs = append(docs, policy.Document{Name: name, File: "instances/" + name + ".yaml", Input: in})
	}

	res, err := engine.Evaluate(ctx, docs)
	if err != nil {
		log.Fatal(err)
	}
	for i, v := range res.Instances {
		for _, m := range v.Deny {
			fmt.Printf("%s: %s.%s: %s\n", docs[i].File, m.Namespace, m.Rule, m.Msg)
		}
	}
	// Output:
	// instances/orders-db.yaml: fleet.deny_shared_host: host 10.0.4.17 is shared
	// instances/orders-db.yaml: main.deny_ssl: orders-db: production instances must have ssl enabled
	// instances/cache.yaml: fleet.deny_shared_host: host 10.0.4.17 is shared
}

// Policy unit tests are Rego rules named test_*, in files beside the
// policies.
func ExampleTest() {
	fleet := fstest.MapFS{
		"policies/main.rego": {Data: []byte(`package main

deny contains "ssl is required" if input.spec.ssl != "enabled"
`)},
		"policies/main_test.rego": {Data: []byte(`package main

test_plaintext_is_denied if {
	deny["ssl is required"] with input as {"spec": {"ssl": "disabled"}}
}

test_encrypted_is_allowed if {
	count(deny) == 1 with input as {"spec": {"ssl": "enabled"}}
}
`)},
	}
	results, err := policy.Test(context.Background(), fleet, "policies")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Println(r)
	}
	// Output:
	// PASS policies/main_test.rego:3: data.main.test_plaintext_is_denied
	// FAIL policies/main_test.rego:7: data.main.test_encrypted_is_allowed: policies/main_test.rego:8: count(deny) == 1 with input as {"spec": {"ssl": "enabled"}} is false or undefined
}
