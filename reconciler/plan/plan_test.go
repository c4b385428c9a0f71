package plan

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/specs"
)

const doc = `apiVersion: reconciler/v1
kind: Instance
metadata:
  name: NAME
  labels: {env: production}
spec:
  datastore: {type: mysql, version: "8.0"}
  hosts: [NAME.db.internal]
  ssl: enabled
  rpcEncryption: enabled
`

// fleet loads files (path -> content; NAME in content becomes the file's
// base name) the way diff does.
func fleet(t *testing.T, files map[string]string) *specs.Fleet {
	t.Helper()
	fsys := fstest.MapFS{"instances/README.md": {Data: []byte("an empty fleet still has its directory")}}
	for path, content := range files {
		fsys["instances/"+path] = &fstest.MapFile{Data: []byte(content)}
	}
	f, err := specs.Load(context.Background(), fsys, "instances")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func instance(name string, edits ...string) string {
	s := strings.ReplaceAll(doc, "NAME", name)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			panic("no " + edits[i] + " in the document")
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return s
}

// denyNames is an Evaluator that denies the instances it names, and checks
// that it is handed the documents as written.
type denyNames map[string]bool

func (d denyNames) Evaluate(_ context.Context, docs []policy.Document) (*policy.Result, error) {
	res := &policy.Result{Instances: make([]policy.Verdict, len(docs))}
	for i, doc := range docs {
		meta := doc.Input.(map[string]any)["metadata"].(map[string]any)
		if meta["name"] != doc.Name {
			panic("document input does not match its name")
		}
		if d[doc.Name] {
			res.Instances[i].Deny = []policy.Message{{Msg: doc.Name + " denied", Namespace: "main", Rule: "deny"}}
		}
	}
	return res, nil
}

type planned struct {
	Change  Change
	Fields  []Field
	Actions []Action
	Held    string
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name     string
		base     map[string]string // nil: an empty fleet
		desired  map[string]string
		deny     denyNames
		opts     Options
		want     map[string]planned
		wantExit int
	}{
		{
			name:    "new instance with ssl and rpc encryption",
			desired: map[string]string{"a.yaml": instance("orders")},
			want: map[string]planned{"orders": {Change: Create,
				Fields: []Field{
					{Path: "metadata.labels.env", To: "production"},
					{Path: "spec.datastore.type", To: "mysql"},
					{Path: "spec.datastore.version", To: "8.0"},
					{Path: "spec.hosts", To: []string{"orders.db.internal"}},
					{Path: "spec.rpcEncryption", To: "enabled"},
					{Path: "spec.ssl", To: "enabled"},
					{Path: "spec.tls.keyType", To: "ec"},
					{Path: "spec.tls.minVersion", To: "1.2"},
					{Path: "spec.tls.provider", To: "local"},
					{Path: "spec.tls.requireSecureTransport", To: true},
					{Path: "spec.tls.ttl", To: "720h"},
				},
				Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS}}},
			wantExit: ExitChanges,
		},
		{
			name:     "enabling ssl issues and installs a certificate",
			base:     map[string]string{"a.yaml": instance("orders", "ssl: enabled", "ssl: disabled")},
			desired:  map[string]string{"a.yaml": instance("orders")},
			want:     map[string]planned{"orders": {Change: Update, Fields: []Field{{Path: "spec.ssl", From: "disabled", To: "enabled"}}, Actions: []Action{IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS}}},
			wantExit: ExitChanges,
		},
		{
			name:     "disabling ssl removes it and revokes the certificate",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{"a.yaml": instance("orders", "ssl: enabled", "ssl: disabled")},
			want:     map[string]planned{"orders": {Change: Update, Fields: []Field{{Path: "spec.ssl", From: "enabled", To: "disabled"}}, Actions: []Action{RemoveSSL, ReloadDatastore, RevokeCertificate}}},
			wantExit: ExitChanges,
		},
		{
			name:    "a new host reissues the certificate and revokes the old one",
			base:    map[string]string{"a.yaml": instance("orders")},
			desired: map[string]string{"a.yaml": instance("orders", "hosts: [orders.db.internal]", "hosts: [orders.db.internal, 10.0.0.9]")},
			want: map[string]planned{"orders": {Change: Update,
				Fields:  []Field{{Path: "spec.hosts", From: []string{"orders.db.internal"}, To: []string{"orders.db.internal", "10.0.0.9"}}},
				Actions: []Action{IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS, RevokeCertificate}}},
			wantExit: ExitChanges,
		},
		{
			name:    "a new key type reissues the certificate",
			base:    map[string]string{"a.yaml": instance("orders")},
			desired: map[string]string{"a.yaml": instance("orders") + "  tls: {keyType: rsa}\n"},
			want: map[string]planned{"orders": {Change: Update,
				Fields:  []Field{{Path: "spec.tls.keyType", From: "ec", To: "rsa"}},
				Actions: []Action{IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS, RevokeCertificate}}},
			wantExit: ExitChanges,
		},
		{
			name:    "a new minimum TLS version reconfigures with the same certificate",
			base:    map[string]string{"a.yaml": instance("orders")},
			desired: map[string]string{"a.yaml": instance("orders") + "  tls: {minVersion: \"1.3\"}\n"},
			want: map[string]planned{"orders": {Change: Update,
				Fields:  []Field{{Path: "spec.tls.minVersion", From: "1.2", To: "1.3"}},
				Actions: []Action{InstallSSL, ReloadDatastore, VerifyTLS}}},
			wantExit: ExitChanges,
		},
		{
			name:     "a label change is an update with nothing to do on the host",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{"a.yaml": instance("orders", "env: production", "env: production, team: payments")},
			want:     map[string]planned{"orders": {Change: Update, Fields: []Field{{Path: "metadata.labels.team", To: "payments"}}}},
			wantExit: ExitChanges,
		},
		{
			name:     "spelling a default out is no change",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{"b.yaml": instance("orders") + "  tls: {ttl: 720h, minVersion: \"1.2\", provider: local}\n"},
			want:     map[string]planned{"orders": {Change: None}},
			wantExit: ExitClean,
		},
		{
			name:     "a removed instance is released",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{},
			want:     map[string]planned{"orders": {Change: Delete, Fields: deleted(), Actions: []Action{Release}}},
			wantExit: ExitChanges,
		},
		{
			name:     "a removed instance with prune gives its certificate and key up",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{},
			opts:     Options{Prune: true},
			want:     map[string]planned{"orders": {Change: Delete, Fields: deleted(), Actions: []Action{RemoveSSL, ReloadDatastore, RevokeCertificate, RetireRPCKey, Release}}},
			wantExit: ExitChanges,
		},
		{
			name:     "a denied instance gets no actions",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{"a.yaml": instance("orders", "ssl: enabled", "ssl: disabled")},
			deny:     denyNames{"orders": true},
			want:     map[string]planned{"orders": {Change: Update, Fields: []Field{{Path: "spec.ssl", From: "enabled", To: "disabled"}}}},
			wantExit: ExitDenied,
		},
		{
			name:     "a broken file holds its instances instead of deleting them",
			base:     map[string]string{"a.yaml": instance("orders") + "---\n" + instance("ledger")},
			desired:  map[string]string{"a.yaml": instance("orders", "ssl: enabled", "ssl: maybe") + "---\n" + instance("ledger")},
			want:     map[string]planned{"orders": {Change: None, Held: "instances/a.yaml has errors"}, "ledger": {Change: None, Held: "instances/a.yaml has errors"}},
			wantExit: ExitError,
		},
		{
			name:     "a name defined twice is held",
			base:     map[string]string{"a.yaml": instance("orders")},
			desired:  map[string]string{"a.yaml": instance("orders"), "b.yaml": instance("orders")},
			want:     map[string]planned{"orders": {Change: None, Held: "its name is defined more than once"}},
			wantExit: ExitError,
		},
		{
			name: "datastores that cannot reload TLS ask for a restart",
			desired: map[string]string{
				"m.yaml":  instance("search", "type: mysql, version: \"8.0\"", "type: manticore"),
				"g.yaml":  instance("catalog", "type: mysql, version: \"8.0\"", "type: mongodb, version: \"7.0\""),
				"o.yaml":  instance("old", "version: \"8.0\"", "version: \"5.7\""),
				"p.yaml":  instance("pg", "type: mysql, version: \"8.0\"", "type: postgresql, version: \"16\""),
				"ma.yaml": instance("maria", "type: mysql, version: \"8.0\"", "type: mariadb, version: \"10.3\""),
				"mb.yaml": instance("maria11", "type: mysql, version: \"8.0\"", "type: mariadb, version: \"10.11\""),
			},
			want: map[string]planned{
				"search":  {Change: Create, Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, RestartRequired, VerifyTLS}},
				"catalog": {Change: Create, Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, RestartRequired, VerifyTLS}},
				"old":     {Change: Create, Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, RestartRequired, VerifyTLS}},
				"pg":      {Change: Create, Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS}},
				"maria":   {Change: Create, Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, RestartRequired, VerifyTLS}},
				"maria11": {Change: Create, Actions: []Action{CreateRPCKey, IssueCertificate, InstallSSL, RestartRequired, VerifyTLS}},
			},
			wantExit: ExitChanges,
		},
		{
			name:     "mariadb reloads a reissued certificate with FLUSH SSL",
			base:     map[string]string{"m.yaml": instance("ledger", "type: mysql, version: \"8.0\"", "type: mariadb, version: \"10.11\"")},
			desired:  map[string]string{"m.yaml": instance("ledger", "type: mysql, version: \"8.0\"", "type: mariadb, version: \"10.11\"", "hosts: [ledger.db.internal]", "hosts: [ledger.db.internal, 10.1.1.1]")},
			want:     map[string]planned{"ledger": {Change: Update, Fields: []Field{{Path: "spec.hosts", From: []string{"ledger.db.internal"}, To: []string{"ledger.db.internal", "10.1.1.1"}}}, Actions: []Action{IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS, RevokeCertificate}}},
			wantExit: ExitChanges,
		},
		{
			name:     "mongodb reloads a reissued certificate",
			base:     map[string]string{"g.yaml": instance("catalog", "type: mysql, version: \"8.0\"", "type: mongodb, version: \"7.0\"")},
			desired:  map[string]string{"g.yaml": instance("catalog", "type: mysql, version: \"8.0\"", "type: mongodb, version: \"7.0\"") + "  tls: {ttl: 100h}\n"},
			want:     map[string]planned{"catalog": {Change: Update, Fields: []Field{{Path: "spec.tls.ttl", From: "720h", To: "100h"}}, Actions: []Action{IssueCertificate, InstallSSL, ReloadDatastore, VerifyTLS, RevokeCertificate}}},
			wantExit: ExitChanges,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var observed []*specs.Instance
			if tt.base != nil {
				observed = fleet(t, tt.base).Instances
			}
			var eval Evaluator
			if tt.deny != nil {
				eval = tt.deny
			}
			p, err := Compute(context.Background(), fleet(t, tt.desired), observed, eval, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]planned{}
			for _, in := range p.Instances {
				got[in.Name] = planned{Change: in.Change, Fields: in.Fields, Actions: in.Actions, Held: in.Held}
			}
			ignoreFields := cmp.Options{}
			if strings.HasPrefix(tt.name, "datastores") {
				ignoreFields = cmp.Options{cmpopts.IgnoreFields(planned{}, "Fields")}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), ignoreFields); diff != "" {
				t.Errorf("plan mismatch (-want +got):\n%s", diff)
			}
			if code := p.ExitCode(); code != tt.wantExit {
				t.Errorf("exit code %d, want %d", code, tt.wantExit)
			}
		})
	}
}

// deleted lists the fields of instance("orders") going away.
func deleted() []Field {
	return []Field{
		{Path: "metadata.labels.env", From: "production"},
		{Path: "spec.datastore.type", From: "mysql"},
		{Path: "spec.datastore.version", From: "8.0"},
		{Path: "spec.hosts", From: []string{"orders.db.internal"}},
		{Path: "spec.rpcEncryption", From: "enabled"},
		{Path: "spec.ssl", From: "enabled"},
		{Path: "spec.tls.keyType", From: "ec"},
		{Path: "spec.tls.minVersion", From: "1.2"},
		{Path: "spec.tls.provider", From: "local"},
		{Path: "spec.tls.requireSecureTransport", From: true},
		{Path: "spec.tls.ttl", From: "720h"},
	}
}

func TestMapPathQuotesAwkwardKeys(t *testing.T) {
	if got, want := mapPath("metadata.labels", "app.kubernetes.io/tier"), `metadata.labels["app.kubernetes.io/tier"]`; got != want {
		t.Errorf("mapPath = %s, want %s", got, want)
	}
}

// TestAgainst checks that re-planning one instance against a new observed
// state agrees with planning the fleet against it.
func TestAgainst(t *testing.T) {
	files := map[string]string{
		"a.yaml": instance("orders"),
		"b.yaml": instance("billing", "ssl: enabled", "ssl: disabled"),
		"c.yaml": instance("audit"),
	}
	ctx := context.Background()
	old := fleet(t, map[string]string{"b.yaml": instance("billing")}).Instances
	desired := fleet(t, files)
	deny := denyNames{"audit": true}
	first, err := Compute(ctx, desired, old, deny, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Everything desired is applied: the fleet planned again against it.
	want, err := Compute(ctx, desired, desired.Instances, deny, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range first.Instances {
		pi := &first.Instances[i]
		if pi.Change == None {
			t.Fatalf("%s: the first plan changes nothing; the test needs a change", pi.Name)
		}
		got := pi.Against(pi.Desired, Options{})
		if diff := cmp.Diff(want.Instances[i], got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: Against the applied state (-Compute +Against):\n%s", pi.Name, diff)
		}
		if got.Change != None || len(got.Actions) != 0 {
			t.Errorf("%s: Against the applied state = %s %v, want nothing left to do", pi.Name, got.Change, got.Actions)
		}
	}
	held := Instance{Name: "orders", Change: None, Held: "a.yaml has errors", Observed: old[0]}
	if got := held.Against(desired.Instances[0], Options{}); got.Held != held.Held || got.Observed != desired.Instances[0] || got.Change != None {
		t.Errorf("a held instance Against a new state = %+v, want it held, with the new state observed", got)
	}
}
