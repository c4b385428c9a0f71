package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadFillsDefaultsAndResolvesPaths(t *testing.T) {
	c, err := Load("testdata/reconciler.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir
	want := &Config{
		Source: Source{Git: &GitSource{URL: "https://git.example.com/platform/fleet.git", Branch: "main",
			PollInterval: Duration(2 * time.Minute), WebhookSecretFile: dir + "/secrets/webhook"}},
		Fleet: Fleet{Instances: "instances", Policies: "policies", Namespaces: []string{"main"}, FleetNamespace: "fleet"},
		KeyProvider: KeyProvider{Default: "vault", Vault: &VaultProvider{Address: "https://vault.example.com:8200",
			AppRole: &AppRole{RoleID: "6a1f-role", SecretIDFile: dir + "/secrets/vault-secret-id"}}},
		Store:  Store{SQLite: &SQLiteStore{Path: "/var/lib/reconciler/state.db"}},
		Listen: Listen{API: "0.0.0.0:8443", Agents: "0.0.0.0:8444"},
		TLS:    TLS{Hosts: []string{"reconciler.example.com"}},
		Tokens: []Token{{Name: "ci", Role: "viewer", File: dir + "/secrets/ci-token"},
			{Name: "platform-team", Role: "admin", File: "/etc/reconciler/admin-token"}},
		Agents:    Agents{TokenDir: "/var/lib/reconciler/enrollment-tokens"},
		Reconcile: Reconcile{Concurrency: 16, Resync: Duration(10 * time.Minute)},
		Dir:       dir,
		StateDir:  "/var/lib/reconciler",
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestAMinimalConfigRunsOnEmbeddedDefaults(t *testing.T) {
	c, err := Parse("/etc/reconciler/run.yaml", []byte("source: {dir: {path: fleet}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Source.Dir.Path, c.KeyProvider.Default, c.KeyProvider.Local.Dir, c.Store.SQLite.Path, c.Listen.API, c.Agents.TokenDir}
	want := []string{"/etc/reconciler/fleet", "local", "/etc/reconciler/keys", "/etc/reconciler/reconciler.db", "127.0.0.1:8443", "/etc/reconciler/enrollment-tokens"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestErrorsNameTheLineTheFieldAndTheFix(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "source: {dir: {path: f}}\nlisten:\n  apii: :1\n", "line 3: field apii not found"},
		{"no source", "listen: {api: \":1\"}\n", "run.yaml: source: no source: set source.git.url"},
		{"two sources", "source:\n  dir: {path: f}\n  git: {url: https://x/y.git}\n", "run.yaml:1: source: both git and dir are set"},
		{"plain http to a remote", "source:\n  git:\n    url: http://git.example.com/f.git\n", "run.yaml:3: source.git.url: \"http://git.example.com/f.git\": use https"},
		{"bad duration", "source:\n  git: {url: https://x/y.git, pollInterval: soon}\n", `line 2: "soon" is not a duration`},
		{"fast poll", "source:\n  git:\n    url: https://x/y.git\n    pollInterval: 10ms\n", "run.yaml:4: source.git.pollInterval: 10ms is below 1s"},
		{"unknown provider", "source: {dir: {path: f}}\nkeyProvider:\n  default: aws\n", "run.yaml:3: keyProvider.default: \"aws\" is not one of [local vault]"},
		{"vault without auth", "source: {dir: {path: f}}\nkeyProvider:\n  vault:\n    address: https://v:8200\n", "run.yaml:3: keyProvider.vault: set appRole"},
		{"bad listen address", "source: {dir: {path: f}}\nlisten:\n  api: 8443\n", "run.yaml:3: listen.api: \"8443\" is not host:port"},
		{"half a certificate", "source: {dir: {path: f}}\ntls:\n  certFile: c.pem\n", "run.yaml:2: tls: certFile and keyFile go together"},
		{"bad role", "source: {dir: {path: f}}\ntokens:\n  - name: ci\n    role: root\n    file: t\n", "run.yaml:4: tokens.0.role: \"root\" is not admin or viewer"},
		{"token inline", "source: {dir: {path: f}}\ntokens:\n  - {name: ci, role: viewer}\n", "tokens.0.file: required"},
		{"password in the dsn", "source: {dir: {path: f}}\nstore:\n  postgres:\n    dsn: postgres://r:hunter2@db/r\nreplicas: {advertise: {api: https://a:1, agents: https://a:2}}\n",
			"run.yaml:4: store.postgres.dsn: carries a password: move it to PGPASSFILE"},
		{"two stores", "source: {dir: {path: f}}\nstore:\n  sqlite: {path: s.db}\n  postgres: {dsnFile: d}\nreplicas: {advertise: {api: https://a:1, agents: https://a:2}}\n",
			"run.yaml:2: store: both sqlite and postgres are set"},
		{"unknown verification mode", "source:\n  git:\n    url: https://x/y.git\n    verify:\n      mode: always\n      gpgKeyringFile: k\n",
			"run.yaml:5: source.git.verify.mode: \"always\" is not head or strict"},
		{"verification without keys", "source:\n  git:\n    url: https://x/y.git\n    verify: {mode: strict}\n",
			"run.yaml:4: source.git.verify: no trusted keys"},
		{"replicas on sqlite", "source: {dir: {path: f}}\nreplicas:\n  id: a\n", "run.yaml:2: replicas: replicas share a PostgreSQL store"},
		{"no advertised address", "source: {dir: {path: f}}\nstore:\n  postgres: {dsnFile: d}\nreplicas:\n  advertise: {api: https://a:1}\n",
			"run.yaml:5: replicas.advertise.agents: required with store.postgres"},
		{"plain http advertised", "source: {dir: {path: f}}\nstore:\n  postgres: {dsnFile: d}\nreplicas:\n  advertise: {api: http://a:1, agents: https://a:2}\n",
			"run.yaml:5: replicas.advertise.api: \"http://a:1\" is not an https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("run.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: no input makes Parse panic, and whatever it accepts has a
// source and a positive concurrency.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"source: {dir: {path: f}}\n", "source:\n  git: {url: https://x/y.git}\ntokens: [{name: a, role: admin, file: t}]\n", "", "- 1", "source: 3"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if (c.Source.Git == nil) == (c.Source.Dir == nil) || c.Reconcile.Concurrency < 1 {
			t.Fatalf("accepted %q as %+v", data, c)
		}
	})
}

// TestExamplesLoad keeps examples/reconciler true to the parser.
func TestExamplesLoad(t *testing.T) {
	for _, f := range []string{"../../examples/reconciler/local.yaml", "../../examples/reconciler/production.yaml", "../../examples/reconciler/replicas.yaml"} {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
