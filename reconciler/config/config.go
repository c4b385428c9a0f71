package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the daemon's configuration file.
type Config struct {
	// Source is where the fleet repository is read: git or a directory.
	Source Source `yaml:"source"`
	// Fleet says where instances and policies are inside the fleet root.
	Fleet Fleet `yaml:"fleet"`
	// KeyProvider issues certificates and makes RPC keys.
	KeyProvider KeyProvider `yaml:"keyProvider"`
	// Store keeps applied revisions, wrapped keys and certificates.
	Store Store `yaml:"store"`
	// Listen has the addresses of the API and of the agents' endpoint.
	Listen Listen `yaml:"listen"`
	// TLS is the daemon's own certificate for both listeners.
	TLS TLS `yaml:"tls"`
	// Tokens may call the API.
	Tokens []Token `yaml:"tokens"`
	// Agents configures the agents' endpoint.
	Agents Agents `yaml:"agents"`
	// Reconcile tunes the work queue.
	Reconcile Reconcile `yaml:"reconcile"`
	// Replicas configures running several daemons on one PostgreSQL store.
	Replicas Replicas `yaml:"replicas"`

	// Dir is the directory of the file, against which relative paths
	// were resolved.
	Dir string `yaml:"-"`
	// StateDir holds what the daemon keeps on disk beside its store: the
	// local provider's keys, the enrollment tokens, the CA file.
	StateDir string `yaml:"-"`
}

// Source is the fleet repository: exactly one of Git and Dir.
type Source struct {
	Git *GitSource `yaml:"git"`
	Dir *DirSource `yaml:"dir"`
}

// GitSource reads a branch of a remote (or local) git repository.
type GitSource struct {
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"` // default main
	// Path is the fleet root inside the repository ("" for its root).
	Path string `yaml:"path"`
	// PollInterval is how often the branch is fetched (default 1m,
	// jittered by up to a tenth); webhooks make changes show sooner.
	PollInterval Duration `yaml:"pollInterval"`
	// WebhookSecretFile holds the secret that signs push webhooks
	// (GitHub, Gitea) or the GitLab token; no file, no webhook endpoint.
	WebhookSecretFile string `yaml:"webhookSecretFile"`
	// CacheDir keeps the bare clone (default: the user cache).
	CacheDir string `yaml:"cacheDir"`
	// Verify, when set, refuses revisions whose commits are not signed by
	// a trusted key.
	Verify *VerifyCommits `yaml:"verify"`
}

// VerifyCommits is commit signature verification.
type VerifyCommits struct {
	// Mode is head (the commit applied is signed) or strict (every commit
	// since the last applied one is).
	Mode string `yaml:"mode"`
	// AllowedSignersFile is an OpenSSH allowed_signers file, for commits
	// signed with gpg.format=ssh; GPGKeyringFile an OpenPGP public keyring
	// (gpg --export). One or both.
	AllowedSignersFile string `yaml:"allowedSignersFile"`
	GPGKeyringFile     string `yaml:"gpgKeyringFile"`
}

// DirSource reads a directory: changes are seen through fsnotify, with a
// poll as a fallback.
type DirSource struct {
	Path         string   `yaml:"path"`
	PollInterval Duration `yaml:"pollInterval"` // default 10s
}

// Fleet locates instances and policies inside the fleet root.
type Fleet struct {
	Instances string `yaml:"instances"` // default instances
	Policies  string `yaml:"policies"`  // default policies
	// Namespaces are the Rego packages evaluated per instance (default
	// [main]); AllNamespaces evaluates every package, as conftest's
	// --all-namespaces.
	Namespaces    []string `yaml:"namespaces"`
	AllNamespaces bool     `yaml:"allNamespaces"`
	// FleetNamespace holds the rules that see the whole fleet (default fleet).
	FleetNamespace string `yaml:"fleetNamespace"`
	// RequirePolicies refuses to run without a policy directory.
	RequirePolicies bool `yaml:"requirePolicies"`
}

// KeyProvider names the default provider and configures each one used.
type KeyProvider struct {
	// Default is the provider of instances that do not name one in
	// spec.tls.provider: local (the default) or vault.
	Default string         `yaml:"default"`
	Local   *LocalProvider `yaml:"local"`
	Vault   *VaultProvider `yaml:"vault"`
}

// LocalProvider is the embedded CA and keyring, sealed under a KEK.
type LocalProvider struct {
	Dir string `yaml:"dir"` // default state/keys beside the store
	// KEKFile holds the key-encryption key (32 bytes, base64); without it
	// the RECONCILER_KEK environment variable is read.
	KEKFile string `yaml:"kekFile"`
}

// VaultProvider is HashiCorp Vault: PKI for certificates, transit for keys.
type VaultProvider struct {
	Address   string   `yaml:"address"`
	Namespace string   `yaml:"namespace"`
	CACert    string   `yaml:"caCert"`
	AppRole   *AppRole `yaml:"appRole"`
	// TokenFile holds a Vault token, for when AppRole is not used.
	TokenFile    string `yaml:"tokenFile"`
	PKIMount     string `yaml:"pkiMount"`
	Role         string `yaml:"role"`
	RSARole      string `yaml:"rsaRole"`
	TransitMount string `yaml:"transitMount"`
	TransitKey   string `yaml:"transitKey"`
}

// AppRole is a Vault AppRole login.
type AppRole struct {
	Mount        string `yaml:"mount"`
	RoleID       string `yaml:"roleID"`
	SecretIDFile string `yaml:"secretIDFile"`
}

// Store is where state is kept: SQLite (the default) or, for several
// replicas, PostgreSQL.
type Store struct {
	SQLite   *SQLiteStore   `yaml:"sqlite"`
	Postgres *PostgresStore `yaml:"postgres"`
}

// PostgresStore is a PostgreSQL database, shared by the replicas.
type PostgresStore struct {
	// DSN is a connection string without a password, such as
	// postgres://reconciler@db.example.com/reconciler?sslmode=verify-full;
	// the password comes from PGPASSWORD or PGPASSFILE, as for psql.
	DSN string `yaml:"dsn"`
	// DSNFile holds the connection string instead, password and all
	// (mode 0600).
	DSNFile string `yaml:"dsnFile"`
}

// Replicas is how this daemon takes part in a group sharing one
// PostgreSQL store: one of them, the leader, reconciles; the others
// forward every API and agent request to it.
type Replicas struct {
	// ID names this replica (default: the host name).
	ID string `yaml:"id"`
	// Advertise is where the other replicas reach this one's listeners.
	Advertise Advertise `yaml:"advertise"`
	// CAFile verifies the other replicas' certificates when forwarding
	// (default: the CA this daemon's own certificate came from).
	CAFile string `yaml:"caFile"`
}

// Advertise has this replica's listener URLs as the others see them.
type Advertise struct {
	API    string `yaml:"api"`    // https://10.0.0.1:8443
	Agents string `yaml:"agents"` // https://10.0.0.1:8444
}

// SQLiteStore is an embedded SQLite file.
type SQLiteStore struct {
	Path string `yaml:"path"` // default reconciler.db beside the config
}

// Listen has the listener addresses.
type Listen struct {
	// API serves /v1, /mgmt, /healthz, /readyz and /metrics (default
	// 127.0.0.1:8443).
	API string `yaml:"api"`
	// Agents serves the agents' long polls and enrollment (default
	// :8444). Agents only speak HTTPS, so TLS must be configured.
	Agents string `yaml:"agents"`
}

// TLS is the daemon's serving certificate. With CertFile and KeyFile
// unset, the daemon issues its own from the default key provider for
// Hosts, and agents verify it with that provider's CA.
type TLS struct {
	CertFile string   `yaml:"certFile"`
	KeyFile  string   `yaml:"keyFile"`
	Hosts    []string `yaml:"hosts"` // default [localhost, 127.0.0.1]
}

// Token is an API bearer token: its secret is in File.
type Token struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"` // admin or viewer
	File string `yaml:"file"`
}

// Roles of API tokens.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Agents configures the agents' endpoint.
type Agents struct {
	// AllowPlaintext lets agents without a key, of instances with
	// rpcEncryption disabled, talk plaintext: Trove's upgrade path.
	AllowPlaintext bool `yaml:"allowPlaintext"`
	// TokenDir keeps the enrollment tokens `reconciler agent bootstrap`
	// writes (default enrollment-tokens beside the store).
	TokenDir string `yaml:"tokenDir"`
}

// Reconcile tunes the work queue.
type Reconcile struct {
	// Concurrency is how many instances are reconciled at once (default 8).
	Concurrency int `yaml:"concurrency"`
	// Resync is how often every instance is checked again for drift and
	// renewal (default 10m).
	Resync Duration `yaml:"resync"`
	// Prune removes SSL from, and stops managing, instances whose file
	// was deleted; by default they are left as they are and reported.
	Prune bool `yaml:"prune"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (write 30s, 2m, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and checks the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Error is a problem in the configuration file at a line.
type Error struct {
	File  string
	Line  int    // 0 when the field is absent
	Field string // dotted, as source.git.url
	Msg   string // what is wrong and the fix
}

func (e *Error) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("%s: %s: %s", pos, e.Field, e.Msg)
}

// Parse is Load on data read from path.
func Parse(path string, data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // an empty file takes every default
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	c.Dir = filepath.Dir(abs)
	v := &validator{file: path, root: &root}
	c.check(v)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	c.defaults()
	return &c, nil
}

// validator collects errors with the line of the field they are about.
type validator struct {
	file string
	root *yaml.Node
	errs []error
}

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: lineOf(v.root, field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// lineOf finds the line of a dotted field in the document, or of its
// nearest present parent; 0 when nothing of it is there.
func lineOf(root *yaml.Node, field string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		if n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			continue
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

var providers = []string{"local", "vault"}

func (c *Config) check(v *validator) {
	switch {
	case c.Source.Git == nil && c.Source.Dir == nil:
		v.fail("source", "no source: set source.git.url (a repository) or source.dir.path (a directory)")
	case c.Source.Git != nil && c.Source.Dir != nil:
		v.fail("source", "both git and dir are set: keep one")
	case c.Source.Git != nil:
		g := c.Source.Git
		if g.URL == "" {
			v.fail("source.git.url", "required: the fleet repository, such as https://git.example.com/platform/fleet.git")
		} else if u, err := url.Parse(g.URL); err != nil || (u.Scheme == "http" && !isLoopback(u.Hostname())) {
			v.fail("source.git.url", "%q: use https, ssh or a file path (plain http only to localhost)", g.URL)
		}
		if vc := g.Verify; vc != nil {
			if vc.Mode != "head" && vc.Mode != "strict" {
				v.fail("source.git.verify.mode", "%q is not head or strict (head: the commit applied is signed; strict: every commit since the last applied one)", vc.Mode)
			}
			if vc.AllowedSignersFile == "" && vc.GPGKeyringFile == "" {
				v.fail("source.git.verify", "no trusted keys: set allowedSignersFile (SSH signatures), gpgKeyringFile (GPG), or both")
			}
		}
		if g.PollInterval != 0 && time.Duration(g.PollInterval) < time.Second {
			v.fail("source.git.pollInterval", "%s is below 1s: the remote would be fetched in a loop", time.Duration(g.PollInterval))
		}
	case c.Source.Dir != nil:
		if c.Source.Dir.Path == "" {
			v.fail("source.dir.path", "required: the fleet's directory (it holds instances/ and policies/)")
		}
	}
	if d := c.KeyProvider.Default; d != "" && !slices.Contains(providers, d) {
		v.fail("keyProvider.default", "%q is not one of %v", d, providers)
	}
	if c.KeyProvider.Default == "vault" && c.KeyProvider.Vault == nil {
		v.fail("keyProvider.vault", "the default provider is vault but keyProvider.vault is not configured: set its address and appRole")
	}
	if vp := c.KeyProvider.Vault; vp != nil {
		if vp.Address == "" {
			v.fail("keyProvider.vault.address", "required: https://vault.example.com:8200")
		}
		if vp.AppRole == nil && vp.TokenFile == "" {
			v.fail("keyProvider.vault", "set appRole (roleID and secretIDFile: see reconciler vault bootstrap) or tokenFile")
		}
		if vp.AppRole != nil && (vp.AppRole.RoleID == "" || vp.AppRole.SecretIDFile == "") {
			v.fail("keyProvider.vault.appRole", "needs roleID and secretIDFile, as reconciler vault bootstrap prints them")
		}
	}
	for _, a := range []struct{ field, addr string }{{"listen.api", c.Listen.API}, {"listen.agents", c.Listen.Agents}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			v.fail(a.field, "%q is not host:port (write 127.0.0.1:8443 or :8443)", a.addr)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.fail("tls", "certFile and keyFile go together: set both, or neither to have the key provider issue the daemon's certificate")
	}
	names := map[string]bool{}
	for i, t := range c.Tokens {
		f := fmt.Sprintf("tokens.%d", i)
		switch {
		case t.Name == "":
			v.fail(f+".name", "required: who the token is for, as it appears in the audit log")
		case names[t.Name]:
			v.fail(f+".name", "%q is defined twice", t.Name)
		}
		names[t.Name] = true
		if t.Role != RoleAdmin && t.Role != RoleViewer {
			v.fail(f+".role", "%q is not admin or viewer", t.Role)
		}
		if t.File == "" {
			v.fail(f+".file", "required: a file (mode 0600) that holds the token; tokens never sit in the config")
		}
	}
	c.checkStore(v)
	if c.Reconcile.Concurrency < 0 || c.Reconcile.Concurrency > 256 {
		v.fail("reconcile.concurrency", "%d is outside 1 to 256", c.Reconcile.Concurrency)
	}
	if r := time.Duration(c.Reconcile.Resync); r != 0 && r < 10*time.Second {
		v.fail("reconcile.resync", "%s is below 10s", r)
	}
}

func (c *Config) checkStore(v *validator) {
	pg := c.Store.Postgres
	if pg == nil {
		if c.Replicas != (Replicas{}) {
			v.fail("replicas", "replicas share a PostgreSQL store: set store.postgres (SQLite serves one process)")
		}
		return
	}
	if c.Store.SQLite != nil {
		v.fail("store", "both sqlite and postgres are set: keep one")
	}
	switch {
	case pg.DSN == "" && pg.DSNFile == "":
		v.fail("store.postgres", "set dsn (postgres://user@host/db?sslmode=verify-full) or dsnFile")
	case pg.DSN != "" && pg.DSNFile != "":
		v.fail("store.postgres", "both dsn and dsnFile are set: keep one")
	case pg.DSN != "":
		if u, err := url.Parse(pg.DSN); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				v.fail("store.postgres.dsn", "carries a password: move it to PGPASSFILE or PGPASSWORD, or the whole string to dsnFile")
			}
		} else if strings.Contains(pg.DSN, "password=") {
			v.fail("store.postgres.dsn", "carries a password: move it to PGPASSFILE or PGPASSWORD, or the whole string to dsnFile")
		}
	}
	for _, a := range []struct{ field, u string }{{"replicas.advertise.api", c.Replicas.Advertise.API}, {"replicas.advertise.agents", c.Replicas.Advertise.Agents}} {
		u, err := url.Parse(a.u)
		switch {
		case a.u == "":
			v.fail(a.field, "required with store.postgres: this replica's URL as the others reach it, such as https://10.0.0.1:8443")
		case err != nil || u.Scheme != "https" || u.Host == "":
			v.fail(a.field, "%q is not an https URL with a host (write https://10.0.0.1:8443)", a.u)
		}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaults fills what the file left out and makes paths absolute.
func (c *Config) defaults() {
	abs := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
		if *p != "" && !filepath.IsAbs(*p) && !strings.Contains(*p, "://") {
			*p = filepath.Join(c.Dir, *p)
		}
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	if g := c.Source.Git; g != nil {
		def(&g.Branch, "main")
		if g.PollInterval == 0 {
			g.PollInterval = Duration(time.Minute)
		}
		if g.WebhookSecretFile != "" {
			abs(&g.WebhookSecretFile, "")
		}
		if g.CacheDir != "" {
			abs(&g.CacheDir, "")
		}
		if vc := g.Verify; vc != nil {
			if vc.AllowedSignersFile != "" {
				abs(&vc.AllowedSignersFile, "")
			}
			if vc.GPGKeyringFile != "" {
				abs(&vc.GPGKeyringFile, "")
			}
		}
		if !strings.Contains(g.URL, "://") && !strings.Contains(g.URL, "@") {
			abs(&g.URL, "") // a local repository path
		}
	}
	if d := c.Source.Dir; d != nil {
		abs(&d.Path, "")
		if d.PollInterval == 0 {
			d.PollInterval = Duration(10 * time.Second)
		}
	}
	def(&c.Fleet.Instances, "instances")
	def(&c.Fleet.Policies, "policies")
	def(&c.Fleet.FleetNamespace, "fleet")
	if len(c.Fleet.Namespaces) == 0 {
		c.Fleet.Namespaces = []string{"main"}
	}
	// The state directory holds the local provider's keys, the tokens and
	// the CA file: beside the SQLite file, or beside the configuration.
	state := c.Dir
	if pg := c.Store.Postgres; pg != nil {
		if pg.DSNFile != "" {
			abs(&pg.DSNFile, "")
		}
		if c.Replicas.ID == "" {
			c.Replicas.ID, _ = os.Hostname()
		}
		if c.Replicas.CAFile != "" {
			abs(&c.Replicas.CAFile, "")
		}
	} else {
		if c.Store.SQLite == nil {
			c.Store.SQLite = &SQLiteStore{}
		}
		abs(&c.Store.SQLite.Path, "reconciler.db")
		state = filepath.Dir(c.Store.SQLite.Path)
	}
	c.StateDir = state
	def(&c.KeyProvider.Default, "local")
	if c.KeyProvider.Default == "local" && c.KeyProvider.Local == nil {
		c.KeyProvider.Local = &LocalProvider{}
	}
	if l := c.KeyProvider.Local; l != nil {
		if l.Dir == "" {
			l.Dir = filepath.Join(state, "keys")
		}
		abs(&l.Dir, "")
		if l.KEKFile != "" {
			abs(&l.KEKFile, "")
		}
	}
	if vp := c.KeyProvider.Vault; vp != nil {
		if vp.AppRole != nil {
			abs(&vp.AppRole.SecretIDFile, "")
		}
		if vp.TokenFile != "" {
			abs(&vp.TokenFile, "")
		}
		if vp.CACert != "" {
			abs(&vp.CACert, "")
		}
	}
	def(&c.Listen.API, "127.0.0.1:8443")
	def(&c.Listen.Agents, ":8444")
	if c.TLS.CertFile != "" {
		abs(&c.TLS.CertFile, "")
		abs(&c.TLS.KeyFile, "")
	}
	if len(c.TLS.Hosts) == 0 {
		c.TLS.Hosts = []string{"localhost", "127.0.0.1"}
	}
	for i := range c.Tokens {
		abs(&c.Tokens[i].File, "")
	}
	if c.Agents.TokenDir == "" {
		c.Agents.TokenDir = filepath.Join(state, "enrollment-tokens")
	}
	abs(&c.Agents.TokenDir, "")
	if c.Reconcile.Concurrency == 0 {
		c.Reconcile.Concurrency = 8
	}
	if c.Reconcile.Resync == 0 {
		c.Reconcile.Resync = Duration(10 * time.Minute)
	}
}
