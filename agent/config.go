package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/specs"
)

// Config is the agent's configuration file, written by `reconciler agent
// bootstrap NAME` and read by `reconciler agent --config FILE`.
type Config struct {
	// Instance is the instance this agent manages (metadata.name).
	Instance string `yaml:"instance"`
	// Reconciler is where desired state comes from.
	Reconciler Endpoint `yaml:"reconciler"`
	// StateDir keeps the instance's RPC key (0600) and the last applied
	// state, so a restarted agent applies nothing twice.
	StateDir string `yaml:"stateDir"`
	// EnrollmentTokenFile holds the one-time token an agent without a key
	// presents to receive its key, sealed to a key pair it generates.
	EnrollmentTokenFile string `yaml:"enrollmentTokenFile,omitempty"`
	// AllowPlaintext lets an agent that has no key and no token talk
	// plaintext, if the reconciler allows it too: the upgrade path for
	// instances with rpcEncryption disabled. Once the agent has a key it
	// never sends or accepts plaintext again, whatever this says.
	AllowPlaintext bool `yaml:"allowPlaintext,omitempty"`
	// Heartbeat is how long the reconciler may hold a poll when nothing
	// changes, and so how often status is reported (default 30s, at most
	// 5m).
	Heartbeat Duration `yaml:"heartbeat,omitempty"`
	// MetricsAddress, if set, serves the agent's Prometheus metrics on
	// http://ADDRESS/metrics (such as 127.0.0.1:9561).
	MetricsAddress string `yaml:"metricsAddress,omitempty"`
	// Datastore is the server this agent configures.
	Datastore DatastoreConfig `yaml:"datastore"`
}

// Endpoint is the reconciler's agent endpoint.
type Endpoint struct {
	URL    string `yaml:"url"`    // https://reconciler.example.com:8443
	CAFile string `yaml:"caFile"` // verifies the reconciler's certificate
	// Fallbacks are the agent endpoints of the reconciler's other
	// replicas, tried in turn when one cannot be reached (or cannot reach
	// the leader). Not needed behind a load balancer.
	Fallbacks []string `yaml:"fallbacks,omitempty"`
}

// DatastoreConfig is installers.Datastore as written in the file.
type DatastoreConfig struct {
	Type           string   `yaml:"type"`
	Version        string   `yaml:"version,omitempty"`
	ConfigDir      string   `yaml:"configDir"`
	DataDir        string   `yaml:"dataDir,omitempty"`
	Host           string   `yaml:"host"`
	Port           int      `yaml:"port"`
	User           string   `yaml:"user,omitempty"`
	AdminDSN       string   `yaml:"adminDSN,omitempty"`
	ReloadCommand  []string `yaml:"reloadCommand,omitempty"`
	RestartCommand []string `yaml:"restartCommand,omitempty"`
	AllowRestart   bool     `yaml:"allowRestart,omitempty"`
	// ConfigFile is the server's own configuration file, for the
	// installers that edit it (mongod.conf, cassandra.yaml,
	// manticore.conf); the default is that name in ConfigDir.
	ConfigFile string `yaml:"configFile,omitempty"`
	// HBAFile is PostgreSQL's pg_hba.conf; the default is the server's own
	// (SHOW hba_file) when adminDSN is set, else pg_hba.conf in dataDir.
	HBAFile string `yaml:"hbaFile,omitempty"`
	// TLSDir is where MongoDB, Cassandra and Manticore keep the key and
	// CA files; the default is ConfigDir.
	TLSDir string `yaml:"tlsDir,omitempty"`
}

// Installer returns the datastore as the installers see it.
func (d DatastoreConfig) Installer() installers.Datastore {
	return installers.Datastore{
		Type: d.Type, Version: d.Version, ConfigDir: d.ConfigDir, DataDir: d.DataDir,
		Host: d.Host, Port: d.Port, User: d.User, AdminDSN: d.AdminDSN,
		ReloadCommand: d.ReloadCommand, RestartCommand: d.RestartCommand, AllowRestart: d.AllowRestart,
	}
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write 30s, 2m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadConfig reads and checks the agent's configuration file. Unknown
// fields are errors, reported with the file and line.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig on data read from path.
func ParseConfig(path string, data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse agent config %s: %w", path, err)
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = Duration(30 * time.Second)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("check agent config %s: %w", path, err)
	}
	return &c, nil
}

var datastoreTypes = []string{specs.MySQL, specs.MariaDB, specs.PostgreSQL, specs.MongoDB, specs.Cassandra, specs.Manticore}

func (c *Config) validate() error {
	var errs []error
	need := func(v, field, fix string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required: %s", field, fix))
		}
	}
	need(c.Instance, "instance", "name the instance this agent manages (its metadata.name)")
	need(c.Reconciler.URL, "reconciler.url", "the reconciler's agent endpoint, https://host:port")
	need(c.StateDir, "stateDir", "a directory only the agent can read, such as /var/lib/reconciler-agent")
	need(c.Datastore.ConfigDir, "datastore.configDir", "where the installer may write its TLS files and configuration")
	need(c.Datastore.Host, "datastore.host", "the address clients use, for verification")
	if c.Instance != "" {
		if problem, fix := specs.CheckName(c.Instance); problem != "" {
			errs = append(errs, fmt.Errorf("instance: %s; %s", problem, fix))
		}
	}
	if c.Reconciler.URL != "" {
		u, err := url.Parse(c.Reconciler.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("reconciler.url: %q must be an https URL: the agent verifies the reconciler before it trusts anything it says", c.Reconciler.URL))
		}
	}
	for i, raw := range c.Reconciler.Fallbacks {
		if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("reconciler.fallbacks[%d]: %q must be an https URL, as reconciler.url", i, raw))
		}
	}
	if !slices.Contains(datastoreTypes, c.Datastore.Type) {
		errs = append(errs, fmt.Errorf("datastore.type: %q is not one of %v", c.Datastore.Type, datastoreTypes))
	}
	if c.Datastore.Port <= 0 || c.Datastore.Port > 65535 {
		errs = append(errs, fmt.Errorf("datastore.port: %d is not a TCP port", c.Datastore.Port))
	}
	if h := time.Duration(c.Heartbeat); h > 5*time.Minute || h < time.Second {
		errs = append(errs, fmt.Errorf("heartbeat: %s is outside 1s to 5m (the reconciler holds a poll at most 5m; below 1s a fleet floods it)", h))
	}
	if c.Datastore.AllowRestart && len(c.Datastore.RestartCommand) == 0 {
		errs = append(errs, errors.New("datastore.allowRestart needs datastore.restartCommand (argv, such as [systemctl, restart, postgresql])"))
	}
	return errors.Join(errs...)
}
