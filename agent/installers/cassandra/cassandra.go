package cassandra

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"github.com/reconciler-dev/reconciler/agent/installers/confedit"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// File names the installer writes in its TLS directory. Cassandra 4.1 and
// later read PEM through PEMBasedSslContextFactory; 4.0 reads PKCS #12.
const (
	KeystorePEM      = "reconciler-keystore.pem"   // 4.1+: PKCS #8 key, certificate, chain
	TruststorePEM    = "reconciler-truststore.pem" // 4.1+: the chain
	KeystoreP12      = "reconciler-keystore.p12"   // 4.0: key, certificate, chain
	TruststoreP12    = "reconciler-truststore.p12" // 4.0: the chain
	KeystorePassword = "reconciler-keystore.pass"  // 4.0: the random password of both stores
)

// PEMFactory is the SSL context factory class for PEM key material.
const PEMFactory = "org.apache.cassandra.security.PEMBasedSslContextFactory"

const blockNote = `Managed by the reconciler agent. Lines starting "#| " are this file's original text, put back when TLS is turned off.`

var clientBlock = confedit.Block{Name: "client_encryption_options"}

var _ installers.Installer = (*Installer)(nil)

// Installer turns client-to-node TLS on and off for one Cassandra node.
// It is used by one goroutine at a time.
type Installer struct {
	installers.Restarts
	tlsDir string
}

// Option configures an Installer.
type Option func(*Installer)

// WithConfigFile sets the cassandra.yaml the installer edits; the default
// is cassandra.yaml in the datastore's ConfigDir.
func WithConfigFile(path string) Option { return func(i *Installer) { i.Config = path } }

// WithTLSDir sets the directory of the key and trust stores; the default
// is the datastore's ConfigDir. It must exist.
func WithTLSDir(dir string) Option { return func(i *Installer) { i.tlsDir = dir } }

// WithLogger sets the logger; nil, the default, discards. Neither keys nor
// store passwords are ever logged.
func WithLogger(l *slog.Logger) Option { return func(i *Installer) { i.Log = l } }

// New returns the installer for the Cassandra node that ds describes.
// ds.Version (4.0 or later) chooses PEM (4.1+) or PKCS #12 (4.0).
func New(ds installers.Datastore, opts ...Option) *Installer {
	i := &Installer{
		Restarts: installers.Restarts{DS: ds, Server: "Cassandra", Config: filepath.Join(ds.ConfigDir, "cassandra.yaml")},
		tlsDir:   ds.ConfigDir,
	}
	for _, o := range opts {
		o(i)
	}
	if i.Log == nil {
		i.Log = slog.New(slog.DiscardHandler)
	}
	return i
}

func (i *Installer) path(name string) string { return filepath.Join(i.tlsDir, name) }

// stores is the key material in the form one Cassandra version reads.
type stores struct {
	files    []storeFile
	stale    []string // the other version's files, removed
	password string   // 4.0 only
}

type storeFile struct {
	name   string
	data   []byte
	mode   fs.FileMode
	secret bool
}

// Install writes the key and trust stores and the client_encryption_options
// entry of cassandra.yaml. Turning TLS on, or changing its options, needs a
// restart; a certificate rotation is picked up by Cassandra's own reload
// of its stores (4.0+), at once when ds.ReloadCommand is set.
func (i *Installer) Install(ctx context.Context, b installers.Bundle) (*installers.Result, error) {
	v, err := installers.ParseVersion(i.DS.Version)
	if err != nil {
		return nil, err
	}
	if !v.AtLeast(4, 0) {
		return nil, fmt.Errorf("unsupported version %s: the installer supports Cassandra 4.0 and later (accepted_protocols and hot reloading of the stores)", v)
	}
	m, err := installers.ParseMaterial(b)
	if err != nil {
		return nil, err
	}
	var st *stores
	if v.AtLeast(4, 1) {
		st = i.pemStores(m)
	} else if st, err = i.pkcs12Stores(m); err != nil {
		return nil, err
	}
	src, err := os.ReadFile(i.Config)
	if err != nil {
		return nil, fmt.Errorf("read cassandra.yaml: %w", err)
	}
	cfg, err := setClientEncryption(src, i.render(v, b, st.password))
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	_, _, wasOn, err := clientBlock.Find(src, confedit.SplitLines(src))
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	key := installers.Digest("install", cfg, m.KeyPEM, m.CertPEM, m.ChainPEM)

	t := installers.NewTx(i.DS.User)
	for _, f := range st.files {
		if err = t.Write(i.path(f.name), f.data, f.mode, f.secret); err != nil {
			break
		}
	}
	for _, name := range st.stale {
		if err == nil {
			err = t.Remove(i.path(name))
		}
	}
	if err == nil {
		err = t.WriteConfig(i.Config, cfg)
	}
	if err != nil {
		return nil, i.Fail(t, err)
	}
	if !t.MaterialChanged && !t.ConfigChanged {
		return i.Repeat(key, "the stores and cassandra.yaml are already in place"), nil
	}
	secrets := [][]byte{b.Key.Bytes(), m.KeyPEM, []byte(st.password)}
	var res *installers.Result
	switch {
	case t.ConfigChanged || !wasOn:
		res, err = i.Restart(ctx, t, "serve TLS to clients", secrets)
		if err == nil && st.password != "" {
			if info, serr := os.Stat(i.Config); serr == nil && info.Mode().Perm()&0o004 != 0 {
				res.Message += "; cassandra.yaml is world-readable and Cassandra 4.0 needs the keystore password in it: make it 0640, group " + orDefault(i.DS.User, "cassandra")
			}
		}
	case len(i.DS.ReloadCommand) > 0:
		if err = installers.RunCommand(ctx, i.DS.ReloadCommand, secrets...); err != nil {
			return nil, i.Fail(t, fmt.Errorf("reload the stores (datastore.reloadCommand): %w", err))
		}
		res = &installers.Result{Outcome: installers.Reloaded, Message: "Cassandra reloaded its stores and serves the new certificate"}
	default:
		res = &installers.Result{Outcome: installers.Reloaded, Message: "Cassandra checks its stores for changes every 10 minutes and serves the new certificate by then; set datastore.reloadCommand (for example nodetool reloadssl) to apply it at once"}
	}
	if err != nil {
		return nil, err
	}
	return i.Done(t, key, res, "install", b.Serial), nil
}

// Remove takes the client_encryption_options entry out of cassandra.yaml,
// putting back what it replaced byte for byte, and deletes every store.
// Turning TLS off needs a restart.
func (i *Installer) Remove(ctx context.Context) (*installers.Result, error) {
	src, err := os.ReadFile(i.Config)
	if err != nil {
		return nil, fmt.Errorf("read cassandra.yaml: %w", err)
	}
	cfg, wasOn, err := clientBlock.Remove(src)
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	key := installers.Digest("remove", cfg)
	t := installers.NewTx(i.DS.User)
	if wasOn {
		// The previous version is the TLS configuration itself (with the
		// keystore password, on Cassandra 4.0): it goes with the rest.
		err = t.WriteConfig(i.Config, cfg)
		t.Secrets = append(t.Secrets, i.Config)
	}
	for _, name := range []string{KeystorePEM, TruststorePEM, KeystoreP12, TruststoreP12, KeystorePassword} {
		if err == nil {
			err = t.Remove(i.path(name))
		}
	}
	if err != nil {
		return nil, i.Fail(t, err)
	}
	if !t.MaterialChanged && !t.ConfigChanged {
		if i.Remembers(key) {
			return i.Repeat(key, ""), nil
		}
		return &installers.Result{Outcome: installers.Reloaded, Message: "TLS is not configured; nothing to remove"}, nil
	}
	res := &installers.Result{Outcome: installers.Reloaded, Message: "removed stores left behind; cassandra.yaml had no TLS block"}
	if t.ConfigChanged {
		// Cassandra logs a failed store reload every 10 minutes until
		// then; the restart the result asks for ends that.
		if res, err = i.Restart(ctx, t, "stop serving TLS", nil); err != nil {
			return nil, err
		}
	}
	return i.Done(t, key, res, "remove", ""), nil
}

// pemStores is the 4.1+ layout: PEM files, the key unencrypted (the file
// is 0600 and owned by the datastore user, which a password in
// cassandra.yaml could not improve on).
func (i *Installer) pemStores(m *installers.Material) *stores {
	keystore := append(append([]byte{}, m.KeyPEM...), m.CertPEM...)
	return &stores{
		files: []storeFile{
			{KeystorePEM, keystore, 0o600, true},
			{TruststorePEM, m.ChainPEM, 0o644, false},
		},
		stale: []string{KeystoreP12, TruststoreP12, KeystorePassword},
	}
}

// pkcs12Stores is the 4.0 layout. The password is random, kept 0600 beside
// the stores so that a later install (a rotation) reuses it: Cassandra's
// hot reload re-reads the stores, not cassandra.yaml. Stores whose content
// is already right are kept as they are, since PKCS #12 encoding is
// randomised and a rewrite would look like a change.
func (i *Installer) pkcs12Stores(m *installers.Material) (*stores, error) {
	password := ""
	if data, err := os.ReadFile(i.path(KeystorePassword)); err == nil {
		password = strings.TrimSpace(string(data))
	}
	if len(password) < 32 {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("generate keystore password: %w", err)
		}
		password = hex.EncodeToString(raw)
	}
	keystore, err := os.ReadFile(i.path(KeystoreP12))
	if err != nil || !keystoreHolds(keystore, password, m) {
		if keystore, err = pkcs12.Modern2023.Encode(m.Key, m.Leaf, m.Chain, password); err != nil {
			return nil, fmt.Errorf("encode PKCS #12 keystore: %w", err)
		}
	}
	truststore, err := os.ReadFile(i.path(TruststoreP12))
	if err != nil || !truststoreHolds(truststore, password, m.Chain) {
		if truststore, err = pkcs12.Modern2023.EncodeTrustStore(m.Chain, password); err != nil {
			return nil, fmt.Errorf("encode PKCS #12 truststore: %w", err)
		}
	}
	return &stores{
		files: []storeFile{
			{KeystorePassword, []byte(password + "\n"), 0o600, true},
			{KeystoreP12, keystore, 0o600, true},
			{TruststoreP12, truststore, 0o644, false},
		},
		stale:    []string{KeystorePEM, TruststorePEM},
		password: password,
	}, nil
}

func keystoreHolds(data []byte, password string, m *installers.Material) bool {
	key, cert, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil || cert == nil || !bytes.Equal(cert.Raw, m.Leaf.Raw) || !sameCerts(chain, m.Chain) {
		return false
	}
	got, err1 := x509.MarshalPKCS8PrivateKey(key)
	want, err2 := x509.MarshalPKCS8PrivateKey(m.Key)
	return err1 == nil && err2 == nil && bytes.Equal(got, want)
}

func truststoreHolds(data []byte, password string, chain []*x509.Certificate) bool {
	certs, err := pkcs12.DecodeTrustStore(data, password)
	return err == nil && sameCerts(certs, chain)
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !bytes.Equal(a[k].Raw, b[k].Raw) {
			return false
		}
	}
	return true
}

// render is the client_encryption_options entry for version v.
func (i *Installer) render(v installers.Version, b installers.Bundle, password string) []string {
	optional := "true" // plaintext clients are still served on the same port
	if b.RequireSecureTransport {
		optional = "false"
	}
	protocols := "[TLSv1.2, TLSv1.3]"
	if n, _ := installers.TLSMinor(b.MinVersion); n == 3 {
		protocols = "[TLSv1.3]"
	}
	lines := []string{
		"client_encryption_options:",
		"  enabled: true",
		"  optional: " + optional,
	}
	if v.AtLeast(4, 1) {
		lines = append(lines,
			"  ssl_context_factory:",
			"    class_name: "+PEMFactory,
			"  keystore: "+confedit.Quote(i.path(KeystorePEM)),
			"  truststore: "+confedit.Quote(i.path(TruststorePEM)),
		)
	} else {
		lines = append(lines,
			"  keystore: "+confedit.Quote(i.path(KeystoreP12)),
			"  keystore_password: "+confedit.Quote(password),
			"  truststore: "+confedit.Quote(i.path(TruststoreP12)),
			"  truststore_password: "+confedit.Quote(password),
			"  store_type: PKCS12",
			"  protocol: TLS",
		)
	}
	return append(lines,
		"  require_client_auth: false",
		"  accepted_protocols: "+protocols,
	)
}

// setClientEncryption returns src with its top-level
// client_encryption_options entry replaced by (or, when there is none,
// followed at the end of the file by) the managed block.
func setClientEncryption(src []byte, live []string) ([]byte, error) {
	src, _, err := clientBlock.Remove(src)
	if err != nil {
		return nil, err
	}
	lines := confedit.SplitLines(src)
	first, last, found, err := confedit.EntryRange(src, lines, 0, len(lines), 0, "client_encryption_options")
	if err != nil {
		return nil, err
	}
	if !found {
		return clientBlock.Splice(src, len(src), len(src), "", blockNote, live), nil
	}
	if confedit.HoldsMarker(src, lines, first, last+1) {
		return nil, fmt.Errorf("client_encryption_options on line %d holds another reconciler block", first+1)
	}
	return clientBlock.Splice(src, lines[first].Start, lines[last].End, "", blockNote, live), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
