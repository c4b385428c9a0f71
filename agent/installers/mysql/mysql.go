package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	// The driver, registered as "mysql".
	_ "github.com/go-sql-driver/mysql"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/verify"
)

var _ installers.Installer = (*Installer)(nil)

// Installer configures TLS for one MySQL or MariaDB server (the flavour is
// the Datastore's Type). It is used by one goroutine at a time.
type Installer struct {
	ds      installers.Datastore
	log     *slog.Logger
	timeout time.Duration
}

// Option configures an Installer.
type Option func(*Installer)

// WithLogger sets the logger; nil, the default, discards. Nothing logged
// holds key material.
func WithLogger(l *slog.Logger) Option { return func(i *Installer) { i.log = l } }

// WithTimeout bounds how long a restart may take to show its effect (the
// server back, the new certificate served); the default is 60 seconds.
func WithTimeout(d time.Duration) Option { return func(i *Installer) { i.timeout = d } }

// New returns an Installer for ds; ds.Type is "mysql" or "mariadb".
func New(ds installers.Datastore, opts ...Option) *Installer {
	i := &Installer{ds: ds, timeout: 60 * time.Second}
	for _, o := range opts {
		o(i)
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	return i
}

// checkBundle is installers.CheckBundle and a minimum TLS version this
// server can be given.
func checkBundle(b installers.Bundle) (*installers.Checked, error) {
	c, err := installers.CheckBundle(b)
	if err != nil {
		return nil, err
	}
	if _, err := tlsVersions(b.MinVersion); err != nil {
		return nil, fmt.Errorf("check bundle: %w", err)
	}
	return c, nil
}

// Install writes the bundle's files and option fragment and applies them:
// ALTER INSTANCE RELOAD TLS on MySQL 8.0.16+, FLUSH SSL on MariaDB 10.4+
// when the running server already reads these paths, otherwise a restart
// (AllowRestart) or RestartRequired.
func (i *Installer) Install(ctx context.Context, b installers.Bundle) (*installers.Result, error) {
	c, err := checkBundle(b)
	if err != nil {
		return nil, fmt.Errorf("install %s tls: %w", i.ds.Type, err)
	}
	srv, err := i.server(ctx)
	if err != nil {
		return nil, fmt.Errorf("install %s tls: %w", i.ds.Type, err)
	}
	st, err := srv.settings(i.ds.ConfigDir, b.MinVersion, b.RequireSecureTransport)
	if err != nil {
		return nil, fmt.Errorf("install %s tls: %w", i.ds.Type, err)
	}
	f := &installers.Files{Owner: i.ds.User}
	res := &installers.Result{}
	write := func(name string, data []byte, mode fs.FileMode) error {
		path := filepath.Join(i.ds.ConfigDir, name)
		changed, err := f.Write(path, data, mode)
		if changed {
			res.Files = append(res.Files, path)
		}
		return err
	}
	err = errors.Join(
		write(CertFile, append(append([]byte{}, b.CertPEM...), b.ChainPEM...), 0o644),
		write(KeyFile, b.Key.Bytes(), 0o600),
		write(CAFile, b.ChainPEM, 0o644),
		write(ConfFile, RenderOptions(st), 0o644),
	)
	if err != nil {
		return nil, i.undo(ctx, f, nil, fmt.Errorf("install %s tls: %w", i.ds.Type, err))
	}
	res.Outcome, res.Message, err = i.apply(ctx, f, srv, st, c)
	if err != nil {
		return nil, fmt.Errorf("install %s tls: %w", i.ds.Type, err)
	}
	f.Commit()
	i.log.Info("tls installed", "datastore", i.ds.Type, "serial", c.ServedSerial, "outcome", res.Outcome, "files", len(res.Files))
	return res, nil
}

// live is what the running server uses.
type live struct {
	vars map[string]sql.NullString
}

func (l live) get(name string) string { return l.vars[name].String }

// usesFiles reports whether the running server has TLS on with st's
// files.
func (l live) usesFiles(srv Server, st Settings) bool {
	if srv.Flavour == MariaDB && l.get("have_ssl") != "YES" {
		return false
	}
	return l.get("ssl_ca") == st.CA && l.get("ssl_cert") == st.Cert && l.get("ssl_key") == st.Key
}

// usesPaths reports whether the running server has TLS on with st's
// files and TLS versions, so that reloading the files is enough.
func (l live) usesPaths(srv Server, st Settings) bool {
	return l.usesFiles(srv, st) && (st.TLSVersion == "" || sameVersions(l.get("tls_version"), st.TLSVersion))
}

func sameVersions(a, b string) bool {
	return strings.ReplaceAll(strings.ToUpper(a), " ", "") == strings.ReplaceAll(strings.ToUpper(b), " ", "")
}

// apply makes the server take the files written in f. want is the bundle
// installed, nil for a removal. On failure it rolls back and re-applies
// the previous state, and returns the server's message.
func (i *Installer) apply(ctx context.Context, f *installers.Files, srv Server, st Settings, want *installers.Checked) (installers.Outcome, string, error) {
	lv, err := i.live(ctx, srv)
	if err != nil {
		return "", "", i.undo(ctx, f, nil, err)
	}
	switch {
	case srv.Flavour == MySQL && srv.canReloadTLS():
		if !f.Changed() && lv.usesPaths(srv, st) {
			return installers.Reloaded, "unchanged", nil
		}
		stmts := MySQLInstallStatements(st)
		if want == nil {
			stmts = MySQLRemoveStatements()
		}
		if err := i.exec(ctx, stmts); err != nil {
			return "", "", i.undo(ctx, f, &lv, err)
		}
		if err := i.checkServed(ctx, want, false); err != nil {
			return "", "", i.undo(ctx, f, &lv, err)
		}
		return installers.Reloaded, "MySQL reloaded TLS (ALTER INSTANCE RELOAD TLS)" + serving(want), nil

	case srv.Flavour == MariaDB && srv.canReloadTLS() && want != nil && lv.usesPaths(srv, st):
		if !f.Changed() && lv.get("require_secure_transport") == onOffPtr(st.RequireSecureTransport) {
			return installers.Reloaded, "unchanged", nil
		}
		stmts := []string{"FLUSH SSL"}
		if st.RequireSecureTransport != nil {
			stmts = append(stmts, "SET GLOBAL require_secure_transport = "+onOff(*st.RequireSecureTransport))
		}
		if err := i.exec(ctx, stmts); err != nil {
			return "", "", i.undo(ctx, f, &lv, err)
		}
		if err := i.checkServed(ctx, want, false); err != nil {
			return "", "", i.undo(ctx, f, &lv, err)
		}
		return installers.Reloaded, "MariaDB reloaded its certificate files (FLUSH SSL)" + serving(want), nil

	case srv.Flavour == MariaDB && want == nil && !f.Changed() && !lv.usesFiles(srv, st):
		return installers.Reloaded, "unchanged", nil
	}

	// The running server cannot take the change without a restart:
	// MariaDB's ssl_cert, ssl_key, ssl_ca and tls_version are read-only,
	// and so is everything before MySQL 8.0.16 and MariaDB 10.4.
	if want == nil && srv.Flavour == MariaDB {
		if _, ok := lv.vars["require_secure_transport"]; ok {
			// Plaintext must work now: TLS goes away at the restart.
			if err := i.exec(ctx, []string{"SET GLOBAL require_secure_transport = OFF"}); err != nil {
				return "", "", i.undo(ctx, f, &lv, err)
			}
		}
		if !lv.usesFiles(srv, st) {
			return installers.Reloaded, "TLS configuration removed; the server was not serving it", nil
		}
	}
	if !i.ds.AllowRestart || len(i.ds.RestartCommand) == 0 {
		what := "written"
		if want == nil {
			what = "removed"
		}
		return installers.RestartRequired, fmt.Sprintf("TLS configuration %s; %s %s loads ssl_cert, ssl_key and ssl_ca only at start: restart it", what, srv.Flavour, srv.Version), nil
	}
	if !f.Changed() && (want == nil || lv.usesPaths(srv, st)) {
		return installers.Restarted, "unchanged", nil
	}
	if err := i.restart(ctx); err != nil {
		return "", "", i.undo(ctx, f, &lv, err)
	}
	if err := i.checkServed(ctx, want, true); err != nil {
		return "", "", i.undo(ctx, f, &lv, err)
	}
	return installers.Restarted, fmt.Sprintf("restarted %s to load the TLS configuration", srv.Flavour) + serving(want), nil
}

func serving(want *installers.Checked) string {
	if want == nil {
		return ""
	}
	return "; serving certificate serial " + want.ServedSerial
}

func onOffPtr(b *bool) string {
	if b == nil {
		return ""
	}
	return onOff(*b)
}

// Remove takes the TLS files and the option fragment out and applies
// that: MySQL 8.0.16+ reloads with TLS off, MariaDB allows plaintext at
// once (10.5.2+) and stops serving TLS at the next restart.
func (i *Installer) Remove(ctx context.Context) (*installers.Result, error) {
	srv, err := i.server(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove %s tls: %w", i.ds.Type, err)
	}
	st, err := srv.settings(i.ds.ConfigDir, "", false)
	if err != nil {
		return nil, fmt.Errorf("remove %s tls: %w", i.ds.Type, err)
	}
	f := &installers.Files{Owner: i.ds.User}
	res := &installers.Result{}
	// The fragment first: the server must never start with paths to
	// files that are gone.
	for _, name := range []string{ConfFile, CertFile, KeyFile, CAFile} {
		path := filepath.Join(i.ds.ConfigDir, name)
		changed, err := f.Remove(path)
		if err != nil {
			return nil, i.undo(ctx, f, nil, fmt.Errorf("remove %s tls: %w", i.ds.Type, err))
		}
		if changed {
			res.Files = append(res.Files, path)
		}
	}
	res.Outcome, res.Message, err = i.apply(ctx, f, srv, st, nil)
	if err != nil {
		return nil, fmt.Errorf("remove %s tls: %w", i.ds.Type, err)
	}
	f.Commit()
	if res.Outcome != installers.RestartRequired {
		// The previous key is no rollback material any more: TLS is off.
		if err := os.Remove(filepath.Join(i.ds.ConfigDir, KeyFile+installers.PreviousSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove %s tls: %w", i.ds.Type, err)
		}
	}
	i.log.Info("tls removed", "datastore", i.ds.Type, "outcome", res.Outcome, "files", len(res.Files))
	return res, nil
}

// undo rolls the files back and, when the server was already told about
// the new ones (prev is the state it had), puts that state back: MySQL
// gets its variables and a reload, MariaDB a FLUSH SSL of the old files,
// a restarted server another restart. It returns cause with any failure
// of its own.
func (i *Installer) undo(ctx context.Context, f *installers.Files, prev *live, cause error) error {
	errs := []error{cause}
	if err := f.Rollback(); err != nil {
		errs = append(errs, err)
	}
	if prev != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.timeout)
		defer cancel()
		if err := i.reapply(ctx, *prev); err != nil {
			errs = append(errs, fmt.Errorf("re-apply previous state: %w", err))
		}
	}
	i.log.Warn("tls change rolled back", "datastore", i.ds.Type, "error", cause)
	return errors.Join(errs...)
}

func (i *Installer) reapply(ctx context.Context, prev live) error {
	srv, err := i.server(ctx)
	if err != nil {
		return err
	}
	if i.ds.AllowRestart && len(i.ds.RestartCommand) > 0 && !srv.canReloadTLS() {
		return i.restart(ctx)
	}
	var stmts []string
	if srv.Flavour == MySQL && srv.canReloadTLS() {
		for _, name := range []string{"ssl_ca", "ssl_cert", "ssl_key", "tls_version"} {
			v, ok := prev.vars[name]
			switch {
			case !ok:
			case v.Valid:
				stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = %s", name, sqlString(v.String)))
			default:
				stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = DEFAULT", name))
			}
		}
		stmts = append(stmts, "ALTER INSTANCE RELOAD TLS")
	} else if srv.Flavour == MariaDB && srv.canReloadTLS() && prev.get("have_ssl") == "YES" {
		stmts = append(stmts, "FLUSH SSL")
	}
	if v, ok := prev.vars["require_secure_transport"]; ok && v.Valid {
		stmts = append(stmts, "SET GLOBAL require_secure_transport = "+v.String)
	}
	return i.exec(ctx, stmts)
}

// server is the flavour and version: the Datastore's, or the server's own
// VERSION() when the Datastore gives none or no patch level ("8.0"), since
// what a server supports changes within a minor series (TLS 1.3 from MySQL
// 8.0.16, ALTER INSTANCE RELOAD TLS from 8.0.16). Without an AdminDSN a
// version without a patch level is taken as its .0 release.
func (i *Installer) server(ctx context.Context) (Server, error) {
	flavour := i.ds.Type
	if flavour != MySQL && flavour != MariaDB {
		return Server{}, fmt.Errorf("datastore type %q: want %s or %s", flavour, MySQL, MariaDB)
	}
	v := i.ds.Version
	if v == "" || (strings.Count(v, ".") < 2 && i.ds.AdminDSN != "") {
		exact, err := i.serverVersion(ctx)
		switch {
		case err == nil:
			v = exact
		case v == "":
			return Server{}, err
		}
	}
	ver, err := ParseVersion(v)
	if err != nil {
		return Server{}, err
	}
	return Server{Flavour: flavour, Version: ver}, nil
}

func (i *Installer) serverVersion(ctx context.Context) (string, error) {
	db, err := i.db()
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", fmt.Errorf("read server version: %w", err)
	}
	return v, nil
}

func (i *Installer) db() (*sql.DB, error) {
	if i.ds.AdminDSN == "" {
		return nil, errors.New("connect: the datastore has no admin DSN")
	}
	db, err := sql.Open("mysql", i.ds.AdminDSN)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// live reads the running server's TLS variables. Without an admin DSN
// nothing can be read, and every change needs a restart.
func (i *Installer) live(ctx context.Context, srv Server) (live, error) {
	lv := live{vars: map[string]sql.NullString{}}
	if i.ds.AdminDSN == "" {
		return lv, nil
	}
	names := []string{"ssl_ca", "ssl_cert", "ssl_key"}
	if srv.Flavour == MariaDB {
		names = append(names, "have_ssl")
	}
	if srv.hasTLSVersion() {
		names = append(names, "tls_version")
	}
	if srv.hasRequireSecureTransport() {
		names = append(names, "require_secure_transport")
	}
	db, err := i.db()
	if err != nil {
		return lv, err
	}
	defer db.Close()
	for _, n := range names {
		var v sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+n).Scan(&v); err != nil {
			return lv, fmt.Errorf("read %s: %w", n, err)
		}
		if n == "require_secure_transport" && v.Valid {
			// A boolean: 0 or 1 from SELECT, ON or OFF in SET.
			v.String = onOff(v.String == "1" || strings.EqualFold(v.String, "ON"))
		}
		lv.vars[n] = v
	}
	return lv, nil
}

// exec runs statements in order on one connection; the error is the
// server's.
func (i *Installer) exec(ctx context.Context, stmts []string) error {
	if len(stmts) == 0 {
		return nil
	}
	db, err := i.db()
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// restart runs the RestartCommand (argv, no shell); its output is the
// error.
func (i *Installer) restart(ctx context.Context) error {
	argv := i.ds.RestartCommand
	if len(argv) == 0 {
		return fmt.Errorf("restart %s: no restart command configured", i.ds.Type)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart %s: %s: %w: %s", i.ds.Type, argv[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkServed checks from the client side, with the capability
// handshake, that the server serves want; nothing for a removal. With
// retry it tries until the timeout, for a server coming back from a
// restart.
func (i *Installer) checkServed(ctx context.Context, want *installers.Checked, retry bool) error {
	if i.ds.Port == 0 || want == nil {
		return nil
	}
	host := i.ds.Host
	if host == "" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(i.ds.Port))
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		// The name is the reconciler's concern; the chain and the
		// fingerprint prove the change.
		err := verify.Check(attempt, i.ds.Type, addr, want.Roots, "", want.ServedFingerprint)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if !retry {
			return fmt.Errorf("%s does not serve the new certificate: %w", i.ds.Type, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not serve the new certificate after %v: %w", i.ds.Type, i.timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
