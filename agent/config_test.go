package agent

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig("testdata/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Instance:            "orders-db",
		Reconciler:          Endpoint{URL: "https://reconciler.example.com:8443", CAFile: "/etc/reconciler-agent/ca.pem"},
		StateDir:            "/var/lib/reconciler-agent",
		EnrollmentTokenFile: "/etc/reconciler-agent/enrollment-token",
		Heartbeat:           Duration(30 * time.Second),
		Datastore: DatastoreConfig{
			Type: "postgresql", Version: "15", ConfigDir: "/etc/postgresql/15/main/conf.d", DataDir: "/var/lib/postgresql/15/main",
			Host: "orders-db.db.internal", Port: 5432, User: "postgres", AdminDSN: "host=/var/run/postgresql user=postgres dbname=postgres",
			RestartCommand: []string{"systemctl", "restart", "postgresql@15-main"},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := `instance: orders-db
reconciler: {url: "https://r.example.com:8443", caFile: ca.pem}
stateDir: /var/lib/a
datastore: {type: postgresql, configDir: /etc/pg, host: 127.0.0.1, port: 5432}
`
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field has its line", base + "heartbeet: 10s\n", "line 5: field heartbeet not found"},
		{"plain http refused", strings.Replace(base, "https://", "http://", 1), "must be an https URL"},
		{"bad instance name", strings.Replace(base, "orders-db", "Orders_DB", 1), "instance: \"Orders_DB\" is not a DNS-1123 label"},
		{"unknown datastore", strings.Replace(base, "type: postgresql", "type: oracle", 1), `datastore.type: "oracle" is not one of`},
		{"bad port", strings.Replace(base, "port: 5432", "port: 0", 1), "datastore.port: 0 is not a TCP port"},
		{"restart without a command", base[:len(base)-2] + ", allowRestart: true}\n", "datastore.allowRestart needs datastore.restartCommand"},
		{"bad duration", base + "heartbeat: soon\n", `line 5: "soon" is not a duration`},
		{"heartbeat above the server's limit", base + "heartbeat: 10m\n", "heartbeat: 10m0s is outside 1s to 5m"},
		{"heartbeat that floods the reconciler", base + "heartbeat: 1ms\n", "heartbeat: 1ms is outside 1s to 5m"},
		{"missing state dir", strings.Replace(base, "stateDir: /var/lib/a\n", "", 1), "stateDir is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("agent.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "agent.yaml") {
				t.Errorf("error = %v, want it to name agent.yaml and contain %q", err, tt.want)
			}
		})
	}
}

// TestExampleConfigsLoad keeps examples/agent true to the parser.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../examples/agent/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples/agent holds %d files (%v), want at least 3", len(files), err)
	}
	for _, f := range files {
		c, err := LoadConfig(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := NewInstaller(c.Datastore, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
