package specs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const valid = `apiVersion: reconciler/v1
kind: Instance
metadata:
  name: orders-db
  labels: {env: production, team: payments}
spec:
  datastore: {type: mysql, version: "8.0"}
  hosts: [orders-db.db.internal, 10.0.4.17]
  ssl: enabled
`

func TestParseValid(t *testing.T) {
	got, err := Parse("instances/orders.yaml", []byte(valid+"---\n# only a comment\n---\n"+strings.Replace(valid, "orders-db", "orders-replica", 1)+`  rpcEncryption: enabled
  tls:
    ttl: 2160h
    minVersion: "1.3"
    requireSecureTransport: false
    keyType: rsa
    provider: vault
`), DefaultDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range got {
		in.Raw = nil // compared in TestParseRawIsAsWritten
	}
	want := []*Instance{
		{
			Metadata: Metadata{Name: "orders-db", Labels: map[string]string{"env": "production", "team": "payments"}},
			Spec: Spec{
				Datastore: Datastore{Type: MySQL, Version: "8.0"},
				Hosts:     []string{"orders-db.db.internal", "10.0.4.17"},
				SSL:       Enabled, RPCEncryption: Disabled,
				TLS: TLS{TTL: 720 * time.Hour, MinVersion: "1.2", RequireSecureTransport: true, KeyType: KeyTypeEC, Provider: ProviderLocal},
			},
			File: "instances/orders.yaml", Line: 1,
		},
		{
			Metadata: Metadata{Name: "orders-replica", Labels: map[string]string{"env": "production", "team": "payments"}},
			Spec: Spec{
				Datastore: Datastore{Type: MySQL, Version: "8.0"},
				Hosts:     []string{"orders-db.db.internal", "10.0.4.17"},
				SSL:       Enabled, RPCEncryption: Enabled,
				TLS: TLS{TTL: 2160 * time.Hour, MinVersion: "1.3", RequireSecureTransport: false, KeyType: KeyTypeRSA, Provider: ProviderVault},
			},
			File: "instances/orders.yaml", Line: 13,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

func TestParseRawIsAsWritten(t *testing.T) {
	got, err := Parse("a.yaml", []byte(valid), DefaultDefaults())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "reconciler/v1",
		"kind":       "Instance",
		"metadata": map[string]any{
			"name":   "orders-db",
			"labels": map[string]any{"env": "production", "team": "payments"},
		},
		"spec": map[string]any{
			"datastore": map[string]any{"type": "mysql", "version": "8.0"},
			"hosts":     []any{"orders-db.db.internal", "10.0.4.17"},
			"ssl":       "enabled",
		},
	}
	if diff := cmp.Diff(want, got[0].Raw); diff != "" {
		t.Errorf("Raw mismatch (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "tab in indentation",
			yaml: "apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n\tname: x\n",
			want: []string{"f.yaml:4:1: tab character in indentation; YAML indents with spaces only: replace the tab with spaces"},
		},
		{
			name: "bad indentation",
			yaml: "apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n  name: x\n    labels: {}\n",
			want: []string{`f.yaml:5: invalid YAML: mapping values are not allowed in this context; a key is indented deeper than its siblings, or a value contains ": " and needs quotes`},
		},
		{
			name: "unknown field suggests the closest",
			yaml: strings.Replace(valid, "  ssl: enabled", "  sll: enabled", 1),
			want: []string{
				`f.yaml:9:3: spec.sll: unknown field; did you mean "ssl"? known fields in spec are: datastore, hosts, ssl, rpcEncryption, tls`,
				`f.yaml:7:3: spec.ssl: required field is missing; add ssl: enabled or disabled under spec`,
			},
		},
		{
			name: "field at the wrong level",
			yaml: valid + "ssl: enabled\n",
			want: []string{`f.yaml:10:1: ssl: unknown field; ssl belongs at spec.ssl: check its indentation`},
		},
		{
			name: "wrong enum value",
			yaml: strings.Replace(valid, "ssl: enabled", "ssl: on", 1),
			want: []string{`f.yaml:9:8: spec.ssl: "on" is not a valid value; use one of: enabled, disabled`},
		},
		{
			name: "boolean where a toggle belongs",
			yaml: strings.Replace(valid, "ssl: enabled", "ssl: true", 1),
			want: []string{`f.yaml:9:8: spec.ssl: must be a string, not the boolean true; write ssl: enabled (YAML reads true as a boolean)`},
		},
		{
			name: "unknown datastore type",
			yaml: strings.Replace(valid, "type: mysql", "type: postgres", 1),
			want: []string{`f.yaml:7:21: spec.datastore.type: "postgres" is not a valid value; did you mean "postgresql"? use one of: mysql, mariadb, postgresql, mongodb, cassandra, manticore`},
		},
		{
			name: "unquoted version",
			yaml: strings.Replace(valid, `version: "8.0"`, "version: 8.0", 1),
			want: []string{`f.yaml:7:37: spec.datastore.version: must be a string, not the number 8.0; quote it: version: "8.0"`},
		},
		{
			name: "missing required fields",
			yaml: "apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n  name: x\nspec:\n  ssl: enabled\n",
			want: []string{
				"f.yaml:6:3: spec.datastore: required field is missing; add datastore: {type: mysql} under spec",
				"f.yaml:6:3: spec.hosts: required field is missing; add hosts: [orders-db.db.internal] under spec",
			},
		},
		{
			name: "invalid hosts",
			yaml: strings.Replace(valid, "hosts: [orders-db.db.internal, 10.0.4.17]", "hosts: [\"*.db.internal\", Orders.internal, \"db:3306\", bad_host.internal, 10.0.4.17, 10.0.4.17]", 1),
			want: []string{
				`f.yaml:8:11: spec.hosts[0]: "*.db.internal" is a wildcard; name each host the instance answers on; a wildcard certificate would also be valid for every other host under it`,
				`f.yaml:8:28: spec.hosts[1]: "Orders.internal" has upper-case letters; write it as "orders.internal"`,
				`f.yaml:8:45: spec.hosts[2]: "db:3306" is not a host name or IP address; write only the host, without scheme, port or path (orders-db.db.internal, 10.0.4.17)`,
				`f.yaml:8:56: spec.hosts[3]: "bad_host.internal" is not a valid DNS name or IP address; use labels of lower-case letters, digits and '-' separated by dots, or an IPv4/IPv6 address`,
				`f.yaml:8:86: spec.hosts[5]: "10.0.4.17" is listed twice (first on line 8); remove the repeated entry`,
			},
		},
		{
			name: "empty host list",
			yaml: strings.Replace(valid, "hosts: [orders-db.db.internal, 10.0.4.17]", "hosts: []", 1),
			want: []string{"f.yaml:8:10: spec.hosts: must not be empty; list at least one entry: hosts: [orders-db.db.internal]"},
		},
		{
			name: "invalid name",
			yaml: strings.Replace(valid, "name: orders-db", "name: Orders_DB", 1),
			want: []string{`f.yaml:4:9: metadata.name: "Orders_DB" is not a DNS-1123 label; use lower-case letters, digits and '-', starting and ending with a letter or digit, such as "orders-db"`},
		},
		{
			name: "duplicate key",
			yaml: valid + "  ssl: disabled\n",
			want: []string{"f.yaml:10:3: spec.ssl: duplicate key (first set on line 9); keep only one of them"},
		},
		{
			name: "duplicate name in one file",
			yaml: valid + "---\n" + valid,
			want: []string{`f.yaml:11: metadata.name: instance "orders-db" is defined twice in this file (first on line 1); names must be unique in the fleet: remove or rename one document`},
		},
		{
			name: "wrong apiVersion and kind",
			yaml: strings.Replace(strings.Replace(valid, "reconciler/v1", "reconciler/v2", 1), "kind: Instance", "kind: Database", 1),
			want: []string{
				`f.yaml:1:13: apiVersion: "reconciler/v2" is not a valid value; did you mean "reconciler/v1"? use one of: reconciler/v1`,
				`f.yaml:2:7: kind: "Database" is not a valid value; use one of: Instance`,
			},
		},
		{
			name: "label value not a string",
			yaml: strings.Replace(valid, "team: payments", "tier: 1", 1),
			want: []string{`f.yaml:5:35: metadata.labels.tier: values must be strings, not the number 1; quote it: tier: "1"`},
		},
		{
			name: "short ttl and bad tls values",
			yaml: valid + "  tls: {ttl: 10m, minVersion: \"1.1\", requireSecureTransport: yes}\n",
			want: []string{
				`f.yaml:10:14: spec.tls.ttl: 10m is shorter than the 1h minimum; use "1h" or longer`,
				`f.yaml:10:31: spec.tls.minVersion: "1.1" is not a valid value; did you mean "1.2"? use one of: 1.2, 1.3`,
				`f.yaml:10:62: spec.tls.requireSecureTransport: must be true or false, not the string "yes"; write requireSecureTransport: true or requireSecureTransport: false`,
			},
		},
		{
			name: "provider none with ssl enabled",
			yaml: valid + "  tls: {provider: none}\n",
			want: []string{`f.yaml:1:1: spec.tls.provider: provider "none" issues no certificate, but spec.ssl is enabled; set spec.ssl: disabled, or choose a provider that issues certificates (vault, local, inline, href)`},
		},
		{
			name: "document is a list",
			yaml: "- a\n- b\n",
			want: []string{"f.yaml:1:1: a document must be an Instance mapping, found a list; start the document with apiVersion: reconciler/v1 and kind: Instance"},
		},
		{
			name: "merge keys are refused",
			yaml: "base: &b {ssl: enabled}\n" + valid,
			want: []string{`f.yaml:1:1: base: unknown field; known fields at the top level are: apiVersion, kind, metadata, spec`},
		},
		{
			name: "syntax error in a later document keeps its line",
			yaml: valid + "---\napiVersion: [\n",
			want: []string{"f.yaml:11: invalid YAML: did not find expected node content; a list or mapping is not closed, or a value is missing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("f.yaml", []byte(tt.yaml), DefaultDefaults())
			if got != nil {
				t.Errorf("Parse returned %d instances with errors; a broken file must return none", len(got))
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse error = %v, want an ErrorList", err)
			}
			var msgs []string
			for _, e := range list {
				msgs = append(msgs, e.Error())
			}
			if diff := cmp.Diff(tt.want, msgs); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSkipsEmptyDocuments(t *testing.T) {
	for _, in := range []string{"", "---\n", "# comment\n", "---\n---\n"} {
		got, err := Parse("f.yaml", []byte(in), DefaultDefaults())
		if err != nil || len(got) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want nothing and no error", in, got, err)
		}
	}
}

func TestParseRefusesHugeFile(t *testing.T) {
	_, err := Parse("big.yaml", make([]byte, MaxFileSize+1), DefaultDefaults())
	if err == nil || !strings.Contains(err.Error(), "big.yaml: file is 1048577 bytes") {
		t.Errorf("err = %v, want the file named with its size", err)
	}
}

func TestDefaultsApplyOnlyWhereUnset(t *testing.T) {
	d := Defaults{TTL: 48 * time.Hour, MinVersion: "1.3", RequireSecureTransport: false, Provider: ProviderVault}
	got, err := Parse("f.yaml", []byte(valid+"  tls:\n    ttl: 100h\n"), d)
	if err != nil {
		t.Fatal(err)
	}
	want := TLS{TTL: 100 * time.Hour, MinVersion: "1.3", RequireSecureTransport: false, KeyType: KeyTypeEC, Provider: ProviderVault}
	if diff := cmp.Diff(want, got[0].Spec.TLS); diff != "" {
		t.Errorf("TLS mismatch (-want +got):\n%s", diff)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte(valid + "---\n" + strings.Replace(valid, "orders-db", "b", 1)))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n\tname: x\n"))
	f.Add([]byte("<<: {a: 1}\nspec: {hosts: [a, a]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ins, err := Parse("f.yaml", data, DefaultDefaults())
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v is not a non-empty ErrorList", err)
			}
			for _, e := range list {
				if e.File != "f.yaml" || e.Message == "" {
					t.Fatalf("error without file or message: %#v", e)
				}
			}
			if ins != nil {
				t.Fatal("instances returned with an error")
			}
			return
		}
		for _, in := range ins {
			if problem, _ := checkName(in.Metadata.Name); problem != "" {
				t.Fatalf("accepted invalid name %q", in.Metadata.Name)
			}
			if len(in.Spec.Hosts) == 0 || in.Spec.TLS.TTL < time.Hour {
				t.Fatalf("accepted instance without hosts or with short ttl: %+v", in.Spec)
			}
		}
	})
}
