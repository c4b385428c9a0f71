package postgresql_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/installers/postgresql"
	"github.com/reconciler-dev/reconciler/agent/verify"
	"github.com/reconciler-dev/reconciler/vault"
)

type fixture struct {
	s      *datastoretest.Server
	ca     *datastoretest.CA
	ds     installers.Datastore
	caFile string
}

func newFixture(t *testing.T) *fixture {
	s := datastoretest.PostgreSQL(t, datastoretest.Options{})
	ca := datastoretest.NewCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.ChainPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, ca: ca, caFile: caFile, ds: installers.Datastore{
		Type: "postgresql", Version: "15", ConfigDir: s.ConfigDir, DataDir: s.DataDir,
		Host: s.Host, Port: s.Port, User: s.User, AdminDSN: s.AdminDSN,
	}}
}

func bundle(c *vault.Certificate) installers.Bundle {
	return installers.Bundle{CertPEM: c.CertPEM, ChainPEM: c.ChainPEM, Key: c.Key, Serial: c.Serial, Fingerprint: c.Fingerprint, MinVersion: "1.2"}
}

// query runs a one-row query on a new connection.
func query(t *testing.T, dsn, q string, dest ...any) error {
	t.Helper()
	ctx := t.Context()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, q).Scan(dest...)
}

// verifyFull is a client connection that checks the chain and the name.
func (f *fixture) verifyFull() string {
	return f.s.TCPDSN + " sslmode=verify-full sslrootcert=" + f.caFile
}

func (f *fixture) served(t *testing.T) string {
	t.Helper()
	state, err := verify.Handshake(t.Context(), verify.PostgreSQL, f.s.Addr, &tlsConfigInsecure)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return vault.SerialString(state.PeerCertificates[0].SerialNumber)
}

func startTime(t *testing.T, f *fixture) time.Time {
	var start time.Time
	if err := query(t, f.s.AdminDSN, "SELECT pg_postmaster_start_time()", &start); err != nil {
		t.Fatal(err)
	}
	return start
}

func TestInstallRotateRemove(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	inst := postgresql.New(f.ds)
	first := f.ca.Issue(t, "orders-db")
	pid, started := f.s.Pid(), startTime(t, f)

	res, err := inst.Install(ctx, bundle(first))
	if err != nil {
		t.Fatalf("Install: %v\n%s", err, f.s.Logs())
	}
	if res.Outcome != installers.Reloaded {
		t.Errorf("outcome %s, want Reloaded", res.Outcome)
	}
	wantFiles := []string{
		filepath.Join(f.s.ConfigDir, postgresql.CertFile), filepath.Join(f.s.ConfigDir, postgresql.KeyFile),
		filepath.Join(f.s.ConfigDir, postgresql.CAFile), filepath.Join(f.s.ConfigDir, postgresql.ConfFile),
	}
	if diff := cmp.Diff(wantFiles, res.Files); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	info, err := os.Stat(filepath.Join(f.s.ConfigDir, postgresql.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || info.Sys().(*syscall.Stat_t).Uid == 0 {
		t.Errorf("key file mode %v uid %d, want 0600 owned by postgres", info.Mode().Perm(), info.Sys().(*syscall.Stat_t).Uid)
	}

	t.Run("a verify-full client sees itself in pg_stat_ssl", func(t *testing.T) {
		var ssl bool
		var version string
		if err := query(t, f.verifyFull(), "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &ssl, &version); err != nil {
			t.Fatalf("verify-full connection: %v", err)
		}
		if !ssl || !strings.HasPrefix(version, "TLSv1.") {
			t.Errorf("pg_stat_ssl ssl=%v version=%q, want TLS", ssl, version)
		}
	})
	if err := verify.Check(ctx, verify.PostgreSQL, f.s.Addr, f.ca.Pool(t), "127.0.0.1", first.Fingerprint); err != nil {
		t.Errorf("verify.Check: %v", err)
	}

	t.Run("installing the same bundle again changes nothing", func(t *testing.T) {
		res, err := inst.Install(ctx, bundle(first))
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != installers.Reloaded || len(res.Files) != 0 {
			t.Errorf("second Install = %+v, want Reloaded with no files", res)
		}
	})

	second := f.ca.Issue(t, "orders-db")
	t.Run("rotation is served without a restart", func(t *testing.T) {
		res, err := inst.Install(ctx, bundle(second))
		if err != nil {
			t.Fatalf("Install: %v", err)
		}
		if res.Outcome != installers.Reloaded {
			t.Errorf("outcome %s, want Reloaded", res.Outcome)
		}
		if got := f.served(t); got != second.Serial {
			t.Errorf("served serial %s, want %s", got, second.Serial)
		}
		if f.s.Pid() != pid || !startTime(t, f).Equal(started) {
			t.Errorf("postmaster restarted: pid %d → %d", pid, f.s.Pid())
		}
	})

	t.Run("a key that is not the certificate's is refused and nothing changes", func(t *testing.T) {
		third := f.ca.Issue(t, "orders-db")
		broken := bundle(third)
		broken.Key = first.Key
		before := readAll(t, f.s.ConfigDir)
		_, err := inst.Install(ctx, broken)
		if err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
			t.Fatalf("Install error %v, want a key mismatch", err)
		}
		if strings.Contains(err.Error(), string(first.Key.Bytes()[30:60])) {
			t.Error("the error quotes the private key")
		}
		if diff := cmp.Diff(before, readAll(t, f.s.ConfigDir)); diff != "" {
			t.Errorf("files changed (-before +after):\n%s", diff)
		}
		if got := f.served(t); got != second.Serial {
			t.Errorf("served serial %s, want the old %s", got, second.Serial)
		}
	})

	t.Run("a key the server cannot read is rolled back and the old certificate stays", func(t *testing.T) {
		rootOwned := f.ds
		rootOwned.User = "" // the key stays root's, mode 0600: postgres cannot open it
		third := f.ca.Issue(t, "orders-db")
		before := readAll(t, f.s.ConfigDir)
		_, err := postgresql.New(rootOwned).Install(ctx, bundle(third))
		var mismatch *verify.MismatchError
		if !errors.As(err, &mismatch) || mismatch.Served.Serial != second.Serial {
			t.Fatalf("Install error %v, want a mismatch naming the served serial %s", err, second.Serial)
		}
		if strings.Contains(err.Error(), "re-apply") {
			t.Errorf("the previous state did not go back: %v", err)
		}
		if diff := cmp.Diff(before, readAll(t, f.s.ConfigDir)); diff != "" {
			t.Errorf("files not rolled back (-before +after):\n%s", diff)
		}
		if got := f.served(t); got != second.Serial {
			t.Errorf("served serial %s, want the old %s", got, second.Serial)
		}
		if !strings.Contains(f.s.Logs(), "SSL configuration was not reloaded") {
			t.Errorf("PostgreSQL did not log the failed SSL reload:\n%s", f.s.Logs())
		}
	})

	t.Run("remove turns SSL off", func(t *testing.T) {
		res, err := inst.Remove(ctx)
		if err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if res.Outcome != installers.Reloaded || len(res.Files) != 4 {
			t.Errorf("Remove = %+v, want Reloaded with 4 files", res)
		}
		_, err = verify.Handshake(ctx, verify.PostgreSQL, f.s.Addr, &tlsConfigInsecure)
		if !errors.Is(err, verify.ErrSSLOff) || !strings.Contains(err.Error(), "server answered N") {
			t.Errorf("handshake after Remove: %v, want SSL off", err)
		}
		var one int
		if err := query(t, f.s.TCPDSN+" sslmode=disable", "SELECT 1", &one); err != nil {
			t.Errorf("plaintext connection after Remove: %v", err)
		}
		for _, p := range wantFiles {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after Remove", p)
			}
		}
		if _, err := os.Stat(filepath.Join(f.s.ConfigDir, postgresql.KeyFile+installers.PreviousSuffix)); !errors.Is(err, os.ErrNotExist) {
			t.Error("the previous key is still on disk after Remove")
		}
		res, err = inst.Remove(ctx)
		if err != nil || len(res.Files) != 0 {
			t.Errorf("second Remove = %+v, %v; want no change", res, err)
		}
	})
}

func TestRequireSecureTransportRejectsPlaintext(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	inst := postgresql.New(f.ds)
	b := bundle(f.ca.Issue(t, "orders-db"))
	b.RequireSecureTransport, b.MinVersion = true, "1.3"
	res, err := inst.Install(ctx, b)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	hba := filepath.Join(f.s.DataDir, "pg_hba.conf")
	if !contains(res.Files, hba) {
		t.Errorf("files %v lack %s", res.Files, hba)
	}
	var one int
	err = query(t, f.s.TCPDSN+" sslmode=disable", "SELECT 1", &one)
	if err == nil || !strings.Contains(err.Error(), "no encryption") {
		t.Errorf("plaintext TCP connection: %v, want pg_hba.conf to reject it", err)
	}
	var version string
	if err := query(t, f.verifyFull(), "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &version); err != nil || version != "TLSv1.3" {
		t.Errorf("verify-full connection: %q, %v; want TLSv1.3", version, err)
	}

	b.RequireSecureTransport = false
	if _, err := inst.Install(ctx, b); err != nil {
		t.Fatalf("Install without the requirement: %v", err)
	}
	if err := query(t, f.s.TCPDSN+" sslmode=disable", "SELECT 1", &one); err != nil {
		t.Errorf("plaintext TCP connection once allowed again: %v", err)
	}
}

func TestServerRejectingTheConfigurationRollsBack(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	// An operator's broken line: PostgreSQL itself must say what is wrong.
	hba := filepath.Join(f.s.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append(old, "host all all 999.1.1.1/32 trust\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, f.s.ConfigDir)
	_, err = postgresql.New(f.ds).Install(ctx, bundle(f.ca.Issue(t, "orders-db")))
	if err == nil || !strings.Contains(err.Error(), `specifying both host name and CIDR mask is invalid: "999.1.1.1/32"`) {
		t.Fatalf("Install error %v, want PostgreSQL's own message", err)
	}
	if diff := cmp.Diff(before, readAll(t, f.s.ConfigDir)); diff != "" {
		t.Errorf("files not rolled back (-before +after):\n%s", diff)
	}
	_, err = verify.Handshake(ctx, verify.PostgreSQL, f.s.Addr, &tlsConfigInsecure)
	if !errors.Is(err, verify.ErrSSLOff) {
		t.Errorf("handshake: %v, want SSL still off", err)
	}
}

func TestBefore10NeedsARestart(t *testing.T) {
	ctx := t.Context()
	ca := datastoretest.NewCA(t)
	dir := t.TempDir()
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all peer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ds := installers.Datastore{Type: "postgresql", Version: "9.6", ConfigDir: dir, DataDir: dir}
	b := bundle(ca.Issue(t, "legacy"))
	for _, tc := range []struct {
		name        string
		ds          func(installers.Datastore) installers.Datastore
		want        installers.Outcome
		wantErr     string
		wantWritten bool
	}{
		{name: "no restart allowed: RestartRequired", ds: func(d installers.Datastore) installers.Datastore { return d },
			want: installers.RestartRequired, wantWritten: true},
		{name: "failed restart rolls back", ds: func(d installers.Datastore) installers.Datastore {
			d.AllowRestart, d.RestartCommand = true, []string{"/bin/sh", "-c", "echo pg_ctl: could not start server >&2; exit 1"}
			return d
		}, wantErr: "pg_ctl: could not start server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, postgresql.ConfFile))
			res, err := postgresql.New(tc.ds(ds), postgresql.WithHBAFile(hba), postgresql.WithTimeout(time.Second)).Install(ctx, b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Install error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || res.Outcome != tc.want {
				t.Fatalf("Install = %+v, %v; want %s", res, err, tc.want)
			}
			_, statErr := os.Stat(filepath.Join(dir, postgresql.ConfFile))
			if written := statErr == nil; written != tc.wantWritten {
				t.Errorf("fragment written: %v, want %v", written, tc.wantWritten)
			}
		})
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), installers.PreviousSuffix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		// Mode and owner matter: the server must still read the files.
		out[e.Name()] = fmt.Sprintf("%v uid %d\n%s", info.Mode(), info.Sys().(*syscall.Stat_t).Uid, b)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
