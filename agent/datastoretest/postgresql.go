package datastoretest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgreSQLBin is where Debian's postgresql-15 package puts the server.
const PostgreSQLBin = "/usr/lib/postgresql/15/bin"

// PostgreSQL initialises a private cluster (initdb, trust authentication,
// superuser postgres) and starts it on a free loopback port. Its
// postgresql.conf ends with include_dir = ConfigDir. The server is stopped
// and its files removed when the test ends.
func PostgreSQL(t testing.TB, opts Options) *Server {
	t.Helper()
	initdb := filepath.Join(PostgreSQLBin, "initdb")
	postgres := filepath.Join(PostgreSQLBin, "postgres")
	needBinary(t, initdb, "postgresql-15")
	needBinary(t, postgres, "postgresql-15")

	s := newServer(t, "postgresql", "postgres", postgres)
	s.signal = syscall.SIGINT // fast shutdown
	s.timeout = opts.StartTimeout
	run(t, s.uid, s.gid, s.Dir, initdb, "-D", s.DataDir, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")

	conf := []string{
		"",
		"# datastoretest",
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", s.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", s.SocketDir),
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"shared_buffers = 16MB",
		"max_connections = 30",
	}
	conf = append(conf, opts.Config...)
	// Last, so the fragments an installer writes win over everything above.
	conf = append(conf, fmt.Sprintf("include_dir = '%s'", s.ConfigDir), "")
	if err := appendFile(filepath.Join(s.DataDir, "postgresql.conf"), strings.Join(conf, "\n")); err != nil {
		t.Fatal(err)
	}

	s.AdminDSN = fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", s.SocketDir, s.Port)
	s.TCPDSN = fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", s.Host, s.Port)
	s.args = []string{"-D", s.DataDir}
	s.ready = func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, s.AdminDSN)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		return c.Ping(ctx)
	}
	s.start(t)
	t.Cleanup(func() { s.stop(t) })
	return s
}
