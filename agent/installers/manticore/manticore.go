package manticore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/reconciler-dev/reconciler/agent/installers/confedit"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// File names the installer writes in its TLS directory.
const (
	CAFile   = "reconciler-ca.pem"   // ssl_ca
	CertFile = "reconciler-cert.pem" // ssl_cert: certificate then chain
	KeyFile  = "reconciler-key.pem"  // ssl_key
)

const blockNote = "Managed by the reconciler agent: TLS for searchd. Removed, leaving the rest of this file as it was, when TLS is turned off."

var searchdBlock = confedit.Block{Name: "searchd"}

var _ installers.Installer = (*Installer)(nil)

// Installer turns HTTPS on and off for one Manticore Search daemon. It is
// used by one goroutine at a time.
type Installer struct {
	installers.Restarts
	tlsDir string
	listen string
}

// Option configures an Installer.
type Option func(*Installer)

// WithConfigFile sets the manticore.conf the installer edits; the default
// is manticore.conf in the datastore's ConfigDir.
func WithConfigFile(path string) Option { return func(i *Installer) { i.Config = path } }

// WithTLSDir sets the directory of the certificate, key and CA files; the
// default is the datastore's ConfigDir. It must exist.
func WithTLSDir(dir string) Option { return func(i *Installer) { i.tlsDir = dir } }

// WithListen sets the address part of the HTTPS listener, "[host:]port";
// the default is the datastore's Port on every interface.
func WithListen(addr string) Option { return func(i *Installer) { i.listen = addr } }

// WithLogger sets the logger; nil, the default, discards. Nothing secret
// is ever logged.
func WithLogger(l *slog.Logger) Option { return func(i *Installer) { i.Log = l } }

// New returns the installer for the searchd that ds describes.
func New(ds installers.Datastore, opts ...Option) *Installer {
	i := &Installer{
		Restarts: installers.Restarts{DS: ds, Server: "searchd", Config: filepath.Join(ds.ConfigDir, "manticore.conf")},
		tlsDir:   ds.ConfigDir,
	}
	if ds.Port > 0 {
		i.listen = strconv.Itoa(ds.Port)
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

// Install writes the certificate, key and CA files and, inside the searchd
// section of manticore.conf, the ssl_* directives and an https listener.
// searchd reads them only when it starts: every change needs a restart.
func (i *Installer) Install(ctx context.Context, b installers.Bundle) (*installers.Result, error) {
	m, err := installers.ParseMaterial(b)
	if err != nil {
		return nil, err
	}
	live, err := i.render()
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(i.Config)
	if err != nil {
		return nil, fmt.Errorf("read manticore configuration: %w", err)
	}
	cfg, err := setSearchd(src, live, i.listenPort())
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	key := installers.Digest("install", cfg, m.KeyPEM, m.CertPEM, m.ChainPEM)

	t := installers.NewTx(i.DS.User)
	err = t.Write(i.path(KeyFile), m.KeyPEM, 0o600, true)
	if err == nil {
		err = t.Write(i.path(CertFile), m.CertPEM, 0o644, false)
	}
	if err == nil {
		err = t.Write(i.path(CAFile), m.ChainPEM, 0o644, false)
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
	res, err := i.Restart(ctx, t, "serve HTTPS on "+i.listen, [][]byte{b.Key.Bytes(), m.KeyPEM})
	if err != nil {
		return nil, err
	}
	// Neither is a searchd setting: say so rather than imply them.
	var caveats []string
	if b.RequireSecureTransport {
		caveats = append(caveats, "plain HTTP and MySQL listeners stay open (Manticore cannot refuse plaintext on them; remove them from manticore.conf to require TLS)")
	}
	if b.MinVersion != "" {
		caveats = append(caveats, "the minimum TLS version "+b.MinVersion+" is left to OpenSSL's defaults (searchd has no setting for it)")
	}
	if len(caveats) > 0 {
		res.Message += "; " + strings.Join(caveats, "; ")
	}
	return i.Done(t, key, res, "install", b.Serial), nil
}

// Remove takes the managed block out of the searchd section, leaving
// manticore.conf byte for byte as it was, and deletes the TLS files.
// searchd needs a restart to stop serving HTTPS.
func (i *Installer) Remove(ctx context.Context) (*installers.Result, error) {
	src, err := os.ReadFile(i.Config)
	if err != nil {
		return nil, fmt.Errorf("read manticore configuration: %w", err)
	}
	cfg, wasOn, err := searchdBlock.Remove(src)
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", i.Config, err)
	}
	key := installers.Digest("remove", cfg)
	t := installers.NewTx(i.DS.User)
	if wasOn {
		err = t.WriteConfig(i.Config, cfg)
		t.Secrets = append(t.Secrets, i.Config)
	}
	for _, name := range []string{KeyFile, CertFile, CAFile} {
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
	res := &installers.Result{Outcome: installers.Reloaded, Message: "removed TLS files left behind; manticore.conf had no TLS block"}
	if t.ConfigChanged {
		if res, err = i.Restart(ctx, t, "stop serving HTTPS", nil); err != nil {
			return nil, err
		}
	}
	return i.Done(t, key, res, "remove", ""), nil
}

// render is the managed block's directives. Values in manticore.conf are
// the rest of the line, unquoted, so a path that could end or continue
// the line is refused.
func (i *Installer) render() ([]string, error) {
	if i.listen == "" {
		return nil, errors.New("no HTTPS port: set datastore.port")
	}
	lines := []string{
		"ssl_ca = " + i.path(CAFile),
		"ssl_cert = " + i.path(CertFile),
		"ssl_key = " + i.path(KeyFile),
		"listen = " + i.listen + ":https",
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r#{}\\") {
			return nil, fmt.Errorf("cannot write %q into manticore.conf: choose a TLS directory without newlines, '#', braces or backslashes", l)
		}
	}
	return lines, nil
}

func (i *Installer) listenPort() string {
	return i.listen[strings.LastIndexByte(i.listen, ':')+1:]
}

// directives searchd must not have outside the managed block: a second
// ssl_cert would silently win or lose against ours.
var ownDirectives = []string{"ssl_ca", "ssl_cert", "ssl_key"}

// setSearchd returns src with the managed block at the end of its searchd
// section, just before the closing brace.
func setSearchd(src []byte, live []string, port string) ([]byte, error) {
	src, _, err := searchdBlock.Remove(src)
	if err != nil {
		return nil, err
	}
	lines := confedit.SplitLines(src)
	open, close, err := searchdSection(src, lines)
	if err != nil {
		return nil, err
	}
	indent := ""
	for _, l := range lines[open+1 : close] {
		d := directive(l.Text(src))
		if d == "" || d == "{" {
			continue
		}
		if indent == "" {
			t := l.Text(src)
			indent = string(t[:len(t)-len(bytes.TrimLeft(t, " \t"))])
		}
		name, value, _ := strings.Cut(d, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		for _, own := range ownDirectives {
			if name == own {
				return nil, fmt.Errorf("searchd already sets %s on line %d: the reconciler writes its own; remove that line", own, lineNo(lines, l))
			}
		}
		if name == "listen" && listenPort(value) == port {
			return nil, fmt.Errorf("searchd already listens on port %s on line %d: choose another port for HTTPS (datastore.port)", port, lineNo(lines, l))
		}
	}
	if indent == "" {
		indent = "    "
	}
	at := lines[close].Start
	return searchdBlock.Splice(src, at, at, indent, blockNote, live), nil
}

// searchdSection finds the searchd section: the line of its opening brace
// and the line of its closing one, which must stand alone.
func searchdSection(src []byte, lines []confedit.LineSpan) (open, close int, err error) {
	header := -1
	for k, l := range lines {
		fields := strings.Fields(strings.ReplaceAll(directive(l.Text(src)), "{", " { "))
		if len(fields) > 0 && fields[0] == "searchd" {
			if header >= 0 {
				return 0, 0, fmt.Errorf("two searchd sections, on lines %d and %d", header+1, k+1)
			}
			header = k
		}
	}
	if header < 0 {
		return 0, 0, errors.New("no searchd section")
	}
	open = -1
	for k := header; k < len(lines); k++ {
		d := directive(lines[k].Text(src))
		if k == header {
			d = strings.TrimSpace(strings.TrimPrefix(d, "searchd"))
		}
		if d == "" {
			continue
		}
		if d != "{" {
			return 0, 0, fmt.Errorf("searchd on line %d: want its opening { alone after the name", header+1)
		}
		open = k
		break
	}
	if open < 0 {
		return 0, 0, fmt.Errorf("searchd on line %d has no opening {", header+1)
	}
	for k := open + 1; k < len(lines); k++ {
		d := directive(lines[k].Text(src))
		switch {
		case d == "}":
			return open, k, nil
		case strings.ContainsAny(d, "{}"):
			return 0, 0, fmt.Errorf("line %d of the searchd section holds a brace among other text: put the closing } on a line of its own", k+1)
		}
	}
	return 0, 0, fmt.Errorf("searchd on line %d is never closed", header+1)
}

// directive is a line without its comment and surrounding space.
func directive(line []byte) string {
	s := string(line)
	if k := strings.IndexByte(s, '#'); k >= 0 {
		s = s[:k]
	}
	return strings.TrimSpace(s)
}

// listenPort is the port of a listen value, "[host:]port[:protocol]".
func listenPort(v string) string {
	for _, part := range strings.Split(v, ":") {
		if _, err := strconv.Atoi(part); err == nil {
			return part
		}
	}
	return ""
}

func lineNo(lines []confedit.LineSpan, l confedit.LineSpan) int {
	for k, x := range lines {
		if x == l {
			return k + 1
		}
	}
	return 0
}
