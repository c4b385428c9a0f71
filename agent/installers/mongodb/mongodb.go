package mongodb

import (
	"bytes"
	"context"
	"fmt"
	"github.com/reconciler-dev/reconciler/agent/installers/confedit"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// File names the installer writes in its TLS directory.
const (
	CertificateKeyFile = "reconciler-mongod.pem" // key, certificate and chain: net.tls.certificateKeyFile
	CAFile             = "reconciler-ca.pem"     // net.tls.CAFile
)

// blockNote is the comment at the top of the managed block.
const blockNote = `Managed by the reconciler agent. Lines starting "#| " are this file's original text, put back when TLS is turned off.`

var tlsBlock = confedit.Block{Name: "net.tls"}

var _ installers.Installer = (*Installer)(nil)

// Installer turns TLS on and off for one mongod. It is used by one
// goroutine at a time.
type Installer struct {
	installers.Restarts
	tlsDir string
}

// Option configures an Installer.
type Option func(*Installer)

// WithConfigFile sets the mongod configuration file the installer edits;
// the default is mongod.conf in the datastore's ConfigDir.
func WithConfigFile(path string) Option { return func(i *Installer) { i.Config = path } }

// WithTLSDir sets the directory of the key and CA files; the default is
// the datastore's ConfigDir. It must exist.
func WithTLSDir(dir string) Option { return func(i *Installer) { i.tlsDir = dir } }

// WithLogger sets the logger; nil, the default, discards. Nothing secret
// is ever logged.
func WithLogger(l *slog.Logger) Option { return func(i *Installer) { i.Log = l } }

// New returns the installer for the mongod that ds describes. ds.Version
// (4.2 or later) decides whether a rotation can use rotateCertificates.
func New(ds installers.Datastore, opts ...Option) *Installer {
	i := &Installer{
		Restarts: installers.Restarts{DS: ds, Server: "mongod", Config: filepath.Join(ds.ConfigDir, "mongod.conf")},
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

func (i *Installer) keyPath() string { return filepath.Join(i.tlsDir, CertificateKeyFile) }
func (i *Installer) caPath() string  { return filepath.Join(i.tlsDir, CAFile) }

// Install writes the combined key file and the CA file, and the net.tls
// block of mongod.conf. Turning TLS on, or changing its options, needs a
// restart; rotating the certificate of a MongoDB 5.0 or later that
// already serves TLS runs ds.ReloadCommand (which should run the
// rotateCertificates admin command) when one is configured.
func (i *Installer) Install(ctx context.Context, b installers.Bundle) (*installers.Result, error) {
	v, err := installers.ParseVersion(i.DS.Version)
	if err != nil {
		return nil, err
	}
	if !v.AtLeast(4, 2) {
		return nil, fmt.Errorf("MongoDB %s: net.tls needs MongoDB 4.2 or later", v)
	}
	m, err := installers.ParseMaterial(b)
	if err != nil {
		return nil, err
	}
	keyFile := append(append([]byte{}, m.KeyPEM...), m.CertPEM...)
	src, err := os.ReadFile(i.Config)
	if err != nil {
		return nil, fmt.Errorf("read mongod configuration: %w", err)
	}
	live := func(step string) []string { return i.render(b, step) }
	cfg, err := setTLS(src, live)
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	_, _, wasOn, err := tlsBlock.Find(src, confedit.SplitLines(src))
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	key := installers.Digest("install", cfg, keyFile, m.ChainPEM)

	t := installers.NewTx(i.DS.User)
	err = t.Write(i.keyPath(), keyFile, 0o600, true)
	if err == nil {
		err = t.Write(i.caPath(), m.ChainPEM, 0o644, false)
	}
	if err == nil {
		err = t.WriteConfig(i.Config, cfg)
	}
	if err != nil {
		return nil, i.Fail(t, err)
	}
	if !t.MaterialChanged && !t.ConfigChanged {
		return i.Repeat(key, "the TLS files and configuration are already in place"), nil
	}
	secrets := [][]byte{b.Key.Bytes(), m.KeyPEM}
	var res *installers.Result
	switch {
	case t.ConfigChanged || !wasOn:
		res, err = i.Restart(ctx, t, "serve TLS with the new configuration", secrets)
	case v.AtLeast(5, 0) && len(i.DS.ReloadCommand) > 0:
		if err = installers.RunCommand(ctx, i.DS.ReloadCommand, secrets...); err != nil {
			return nil, i.Fail(t, fmt.Errorf("rotate certificates (datastore.reloadCommand): %w", err))
		}
		res = &installers.Result{Outcome: installers.Reloaded, Message: "mongod rotated to the new certificate (rotateCertificates)"}
	case v.AtLeast(5, 0):
		res, err = i.Restart(ctx, t, "serve the new certificate (or set datastore.reloadCommand to a mongosh command that runs db.adminCommand({rotateCertificates: 1}) to rotate without a restart)", secrets)
	default:
		res, err = i.Restart(ctx, t, "serve the new certificate (MongoDB before 5.0 has no rotateCertificates)", secrets)
	}
	if err != nil {
		return nil, err
	}
	return i.Done(t, key, res, "install", b.Serial), nil
}

// Remove takes the net.tls block out of mongod.conf, putting back what
// it replaced byte for byte, and deletes the key and CA files. Turning
// TLS off needs a restart.
func (i *Installer) Remove(ctx context.Context) (*installers.Result, error) {
	src, err := os.ReadFile(i.Config)
	if err != nil {
		return nil, fmt.Errorf("read mongod configuration: %w", err)
	}
	cfg, wasOn, err := tlsBlock.Remove(src)
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	key := installers.Digest("remove", cfg)
	t := installers.NewTx(i.DS.User)
	if wasOn {
		// The previous version is the TLS configuration itself: it goes
		// with the rest.
		err = t.WriteConfig(i.Config, cfg)
		t.Secrets = append(t.Secrets, i.Config)
	}
	if err == nil {
		err = t.Remove(i.keyPath())
	}
	if err == nil {
		err = t.Remove(i.caPath())
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
	res := &installers.Result{Outcome: installers.Reloaded, Message: "removed TLS files left behind; the configuration had no TLS block"}
	if t.ConfigChanged {
		if res, err = i.Restart(ctx, t, "stop serving TLS", nil); err != nil {
			return nil, err
		}
	}
	return i.Done(t, key, res, "remove", ""), nil
}

// render is the net.tls entry, its nested lines indented by step.
func (i *Installer) render(b installers.Bundle, step string) []string {
	mode := "preferTLS"
	if b.RequireSecureTransport {
		mode = "requireTLS"
	}
	disabled := "TLS1_0,TLS1_1"
	if n, _ := installers.TLSMinor(b.MinVersion); n == 3 {
		disabled = "TLS1_0,TLS1_1,TLS1_2"
	}
	return []string{
		"tls:",
		step + "mode: " + mode,
		step + "certificateKeyFile: " + confedit.Quote(i.keyPath()),
		step + "CAFile: " + confedit.Quote(i.caPath()),
		// A CAFile alone makes mongod demand a client certificate from
		// every client; the bundle is for the server's identity only.
		step + "allowConnectionsWithoutCertificates: true",
		step + "disabledProtocols: " + disabled,
	}
}

// setTLS returns src with its net.tls entry replaced by (or, when there
// is none, net given) the managed block that live renders.
func setTLS(src []byte, live func(step string) []string) ([]byte, error) {
	src, _, err := tlsBlock.Remove(src)
	if err != nil {
		return nil, err
	}
	lines := confedit.SplitLines(src)
	first, last, found, err := confedit.EntryRange(src, lines, 0, len(lines), 0, "net")
	if err != nil {
		return nil, err
	}
	if !found {
		body := []string{"net:"}
		for _, l := range live("  ") {
			body = append(body, "  "+l)
		}
		return tlsBlock.Splice(src, len(src), len(src), "", blockNote, body), nil
	}
	if !blockHeader(lines[first].Text(src), "net") {
		return nil, fmt.Errorf("net on line %d is not a block mapping: write it as \"net:\" with its settings on the lines below", first+1)
	}
	child := 0
	for _, l := range lines[first+1 : last+1] {
		if n, blank, comment := confedit.IndentOf(l.Text(src)); !blank && !comment {
			child = n
			break
		}
	}
	if child == 0 {
		child = 2
	}
	if sf, _, found, _ := confedit.EntryRange(src, lines, first+1, last+1, child, "ssl"); found {
		return nil, fmt.Errorf("net.ssl is set on line %d: the reconciler writes net.tls, and mongod refuses both; remove net.ssl", sf+1)
	}
	tf, tl, found, err := confedit.EntryRange(src, lines, first+1, last+1, child, "tls")
	if err != nil {
		return nil, err
	}
	start, end := lines[last].End, lines[last].End
	if found {
		if confedit.HoldsMarker(src, lines, tf, tl+1) {
			return nil, fmt.Errorf("net.tls on line %d holds another reconciler block", tf+1)
		}
		start, end = lines[tf].Start, lines[tl].End
	}
	step := strings.Repeat(" ", child)
	return tlsBlock.Splice(src, start, end, step, blockNote, live(step)), nil
}

// blockHeader reports whether line is "key:" with at most a comment after
// the colon.
func blockHeader(line []byte, key string) bool {
	rest := bytes.TrimLeft(bytes.TrimPrefix(bytes.TrimLeft(line, " "), []byte(key)), " ")
	rest = bytes.TrimSpace(bytes.TrimPrefix(rest, []byte(":")))
	return len(rest) == 0 || rest[0] == '#'
}
