package postgresql

import (
	"context"
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

	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/verify"
)

var _ installers.Installer = (*Installer)(nil)

// Installer configures TLS for one PostgreSQL server. It is used by one
// goroutine at a time.
type Installer struct {
	ds      installers.Datastore
	hbaFile string
	log     *slog.Logger
	timeout time.Duration
}

// Option configures an Installer.
type Option func(*Installer)

// WithLogger sets the logger; nil, the default, discards. Nothing logged
// holds key material.
func WithLogger(l *slog.Logger) Option { return func(i *Installer) { i.log = l } }

// WithHBAFile sets the pg_hba.conf to edit. The default is the server's
// own (SHOW hba_file) when AdminDSN is set, else pg_hba.conf in DataDir.
func WithHBAFile(path string) Option { return func(i *Installer) { i.hbaFile = path } }

// WithTimeout bounds how long a reload or restart may take to show its
// effect (the configuration loaded, the new certificate served); the
// default is 30 seconds.
func WithTimeout(d time.Duration) Option { return func(i *Installer) { i.timeout = d } }

// New returns an Installer for ds.
func New(ds installers.Datastore, opts ...Option) *Installer {
	i := &Installer{ds: ds, timeout: 30 * time.Second}
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
	if _, err := protocolVersion(b.MinVersion); err != nil {
		return nil, fmt.Errorf("check bundle: %w", err)
	}
	return c, nil
}

// Install writes the bundle's files and configuration and reloads the
// server; see the package documentation for what it writes and checks.
func (i *Installer) Install(ctx context.Context, b installers.Bundle) (*installers.Result, error) {
	c, err := checkBundle(b)
	if err != nil {
		return nil, fmt.Errorf("install postgresql tls: %w", err)
	}
	major, err := i.major(ctx)
	if err != nil {
		return nil, fmt.Errorf("install postgresql tls: %w", err)
	}
	conf, err := RenderConf(i.ds.ConfigDir, b.MinVersion, major)
	if err != nil {
		return nil, fmt.Errorf("install postgresql tls: %w", err)
	}
	hbaPath, err := i.hbaPath(ctx)
	if err != nil {
		return nil, fmt.Errorf("install postgresql tls: %w", err)
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
	serverPEM := append(append([]byte{}, b.CertPEM...), b.ChainPEM...)
	err = errors.Join(
		write(CertFile, serverPEM, 0o644),
		write(KeyFile, b.Key.Bytes(), 0o600),
		write(CAFile, b.ChainPEM, 0o644),
		write(ConfFile, conf, 0o644),
	)
	if err == nil {
		err = i.writeHBA(f, hbaPath, b.RequireSecureTransport, res)
	}
	if err != nil {
		return nil, i.undo(ctx, f, false, fmt.Errorf("install postgresql tls: %w", err))
	}

	res.Outcome, res.Message, err = i.apply(ctx, f, major, c)
	if err != nil {
		return nil, fmt.Errorf("install postgresql tls: %w", err)
	}
	f.Commit()
	i.log.Info("postgresql tls installed", "serial", c.ServedSerial, "outcome", res.Outcome, "files", len(res.Files))
	return res, nil
}

// Remove takes the TLS files, the fragment and the managed pg_hba.conf
// block out and reloads.
func (i *Installer) Remove(ctx context.Context) (*installers.Result, error) {
	major, err := i.major(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove postgresql tls: %w", err)
	}
	hbaPath, err := i.hbaPath(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove postgresql tls: %w", err)
	}
	f := &installers.Files{Owner: i.ds.User}
	res := &installers.Result{}
	// The fragment first: the server must never read ssl = on without its files.
	for _, name := range []string{ConfFile, CertFile, KeyFile, CAFile} {
		path := filepath.Join(i.ds.ConfigDir, name)
		changed, err := f.Remove(path)
		if err != nil {
			return nil, i.undo(ctx, f, false, fmt.Errorf("remove postgresql tls: %w", err))
		}
		if changed {
			res.Files = append(res.Files, path)
		}
	}
	if err := i.writeHBA(f, hbaPath, false, res); err != nil {
		return nil, i.undo(ctx, f, false, fmt.Errorf("remove postgresql tls: %w", err))
	}
	res.Outcome, res.Message, err = i.apply(ctx, f, major, nil)
	if err != nil {
		return nil, fmt.Errorf("remove postgresql tls: %w", err)
	}
	f.Commit()
	// The previous key is no rollback material any more: TLS is off.
	if err := os.Remove(filepath.Join(i.ds.ConfigDir, KeyFile+installers.PreviousSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove postgresql tls: %w", err)
	}
	i.log.Info("postgresql tls removed", "outcome", res.Outcome, "files", len(res.Files))
	return res, nil
}

func (i *Installer) writeHBA(f *installers.Files, path string, require bool, res *installers.Result) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	hba, err := RenderHBA(old, require)
	if err != nil {
		return err
	}
	changed, err := f.Write(path, hba, info.Mode().Perm())
	if changed {
		res.Files = append(res.Files, path)
	}
	return err
}

// apply makes the server take the files as written in f: nothing when
// nothing changed, else a reload (10 and later) or a restart or
// RestartRequired. want is the bundle installed, nil for a removal. On
// failure it rolls f back, re-applies the old files and returns the
// reason.
func (i *Installer) apply(ctx context.Context, f *installers.Files, major int, want *installers.Checked) (installers.Outcome, string, error) {
	if major < 10 {
		if !f.Changed() && !i.ds.AllowRestart {
			return installers.RestartRequired, "unchanged; PostgreSQL before 10 reads TLS files only at start", nil
		}
		if !i.ds.AllowRestart || len(i.ds.RestartCommand) == 0 {
			return installers.RestartRequired, fmt.Sprintf("written; PostgreSQL %d reads TLS files only at start: restart it", major), nil
		}
		if !f.Changed() {
			return installers.Restarted, "unchanged", nil
		}
		if err := run(ctx, "restart", i.ds.RestartCommand); err != nil {
			return "", "", i.undo(ctx, f, true, err)
		}
		if err := i.checkServed(ctx, want, true); err != nil {
			return "", "", i.undo(ctx, f, true, err)
		}
		return installers.Restarted, "restarted PostgreSQL to load the TLS files", nil
	}
	if !f.Changed() {
		return installers.Reloaded, "unchanged", nil
	}
	if err := i.configErrors(ctx); err != nil {
		return "", "", i.undo(ctx, f, false, err)
	}
	if err := i.reload(ctx); err != nil {
		return "", "", i.undo(ctx, f, true, err)
	}
	// After pg_reload_conf() the reload is known to be done; a reload
	// command may return before the server acts.
	if err := i.checkServed(ctx, want, i.ds.AdminDSN == ""); err != nil {
		return "", "", i.undo(ctx, f, true, err)
	}
	if want == nil {
		return installers.Reloaded, "TLS configuration removed and PostgreSQL reloaded", nil
	}
	msg := fmt.Sprintf("PostgreSQL reloaded and serves certificate serial %s", want.ServedSerial)
	if major < 12 {
		msg += fmt.Sprintf("; PostgreSQL %d has no ssl_min_protocol_version, so the minimum TLS version is the library's", major)
	}
	return installers.Reloaded, msg, nil
}

// undo rolls the files back, reloads (or restarts) the server onto them
// when it had already been told about the new ones, and returns cause
// with any failure of its own.
func (i *Installer) undo(ctx context.Context, f *installers.Files, reapply bool, cause error) error {
	errs := []error{cause}
	if err := f.Rollback(); err != nil {
		errs = append(errs, err)
	}
	if reapply {
		// The rollback must reach the server even when ctx has ended.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.timeout)
		defer cancel()
		var err error
		if len(i.ds.RestartCommand) > 0 && i.ds.AllowRestart && i.knownMajor(ctx) < 10 {
			err = run(ctx, "restart", i.ds.RestartCommand)
		} else {
			err = i.reload(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("re-apply previous files: %w", err))
		}
	}
	i.log.Warn("postgresql tls change rolled back", "error", cause)
	return errors.Join(errs...)
}

// knownMajor is major without the error, for undo.
func (i *Installer) knownMajor(ctx context.Context) int {
	m, err := i.major(ctx)
	if err != nil {
		return 10
	}
	return m
}

// major is the server's major version: from the Datastore's Version, or
// the server's own server_version_num.
func (i *Installer) major(ctx context.Context) (int, error) {
	v := i.ds.Version
	if v == "" && i.ds.AdminDSN != "" {
		err := i.withConn(ctx, func(c *pgx.Conn) error {
			var num string
			if err := c.QueryRow(ctx, "SHOW server_version_num").Scan(&num); err != nil {
				return err
			}
			n, err := strconv.Atoi(num)
			if err != nil {
				return err
			}
			if n >= 100000 {
				v = strconv.Itoa(n / 10000)
			} else {
				v = fmt.Sprintf("%d.%d", n/10000, n/100%100)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("read server version: %w", err)
		}
	}
	return parseMajor(v)
}

// parseMajor reads "15", "15.4", "9.6.24" or "16beta1"; 9.x counts as 9.
func parseMajor(v string) (int, error) {
	digits := v
	if j := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
		digits = v[:j]
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("parse PostgreSQL version %q: want a major version such as 15", v)
	}
	return n, nil
}

func (i *Installer) hbaPath(ctx context.Context) (string, error) {
	if i.hbaFile != "" {
		return i.hbaFile, nil
	}
	if i.ds.AdminDSN == "" {
		return filepath.Join(i.ds.DataDir, "pg_hba.conf"), nil
	}
	var path string
	err := i.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SHOW hba_file").Scan(&path)
	})
	if err != nil {
		return "", fmt.Errorf("find pg_hba.conf: %w", err)
	}
	return path, nil
}

func (i *Installer) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, i.ds.AdminDSN)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return fn(c)
}

// configErrors asks the server to parse the files as they are now on disk
// and returns its complaints. Without AdminDSN there is no one to ask.
func (i *Installer) configErrors(ctx context.Context) error {
	if i.ds.AdminDSN == "" {
		return nil
	}
	var problems []string
	err := i.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT coalesce(sourcefile, ''), coalesce(sourceline, 0), coalesce(name, ''), error
			FROM pg_file_settings WHERE error IS NOT NULL
			UNION ALL
			SELECT 'pg_hba.conf', line_number, '', error
			FROM pg_hba_file_rules WHERE error IS NOT NULL`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var file, name, msg string
			var line int
			if err := rows.Scan(&file, &line, &name, &msg); err != nil {
				return err
			}
			if name != "" {
				msg = name + ": " + msg
			}
			problems = append(problems, fmt.Sprintf("%s:%d: %s", file, line, msg))
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("check configuration: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check configuration: PostgreSQL rejects it: %s", strings.Join(problems, "; "))
	}
	return nil
}

// reload makes the postmaster re-read its configuration and waits until
// it has: pg_reload_conf() only sends a signal. A connection opened after
// the postmaster handled the signal reports a newer pg_conf_load_time(),
// and the postmaster reloads SSL in the same step.
func (i *Installer) reload(ctx context.Context) error {
	if i.ds.AdminDSN == "" {
		if len(i.ds.ReloadCommand) == 0 {
			return errors.New("reload postgresql: the datastore has neither an admin DSN nor a reload command")
		}
		return run(ctx, "reload", i.ds.ReloadCommand)
	}
	var before time.Time
	err := i.withConn(ctx, func(c *pgx.Conn) error {
		if err := c.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&before); err != nil {
			return err
		}
		var ok bool
		if err := c.QueryRow(ctx, "SELECT pg_reload_conf()").Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("pg_reload_conf() returned false: the postmaster could not be signalled")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reload postgresql: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	for {
		var after time.Time
		err := i.withConn(ctx, func(c *pgx.Conn) error {
			return c.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&after)
		})
		if err == nil && after.After(before) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reload postgresql: configuration not reloaded in %v: %w", i.timeout, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkServed checks from the client side that the server now serves
// want; nothing for a removal. With retry it tries until the timeout, for
// reload commands and restarts that return before the server has acted.
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
		// The name is the reconciler's concern; here only the chain and
		// the fingerprint prove the reload.
		err := verify.Check(attempt, verify.PostgreSQL, addr, want.Roots, "", want.ServedFingerprint)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if !retry {
			return fmt.Errorf("PostgreSQL does not serve the new certificate (its log says why, e.g. \"SSL configuration was not reloaded\"): %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL does not serve the new certificate (its log says why, e.g. \"SSL configuration was not reloaded\"): %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs a datastore command (argv, no shell); its output is the error.
func run(ctx context.Context, what string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("%s postgresql: no command configured", what)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s postgresql: %s: %w: %s", what, argv[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}
