package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serverDSN is the PostgreSQL server the tests create their databases
// on: the machine's own, as CI starts it.
func serverDSN() string {
	if dsn := os.Getenv("RECONCILER_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// createDatabase creates an empty database on the test server, with the
// CREATE DATABASE options with (none when empty), and returns its DSN and
// a function that drops it, whoever is still connected.
func createDatabase(ctx context.Context, with string) (dsn string, drop func() error, err error) {
	admin, err := pgx.Connect(ctx, serverDSN())
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL at %s: %w (start it with: "+
			"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)", serverDSN(), err)
	}
	defer admin.Close(ctx)
	name := "reconciler_" + hex.EncodeToString(randomBytes(6))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" "+with); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverDSN())
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return withDatabase(serverDSN(), name), drop, nil
}

// withDatabase is dsn, a URL, naming database name instead.
func withDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " dbname=" + name // key=value form: the last one wins
	}
	u.Path = "/" + name
	return u.String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// freshDatabase creates an empty database for the test (CREATE DATABASE
// options in with, if any), dropped in t.Cleanup, and returns its DSN. An
// unreachable server fails the test: CI starts one, and a test that skips
// would hide that it did not.
func freshDatabase(t testing.TB, with ...string) string {
	t.Helper()
	dsn, drop, err := createDatabase(context.Background(), strings.Join(with, " "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return dsn
}

// openStore opens the store at dsn and closes it in t.Cleanup.
func openStore(t testing.TB, dsn string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// connect opens a session of the test's own on dsn, as psql would.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
