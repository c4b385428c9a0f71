package datastoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// MariaDB binaries, from Debian's mariadb-server package.
const (
	MariaDBInstallDB = "/usr/bin/mariadb-install-db"
	MariaDBServer    = "/usr/sbin/mariadbd"
)

// MariaDBTCPUser is the account TCPDSN logs in as: a superuser allowed
// from any host, with a random password.
const MariaDBTCPUser = "tester"

// MariaDB initialises a private data directory (mariadb-install-db) and
// starts mariadbd on a free loopback port with its own my.cnf, whose
// [mysqld] section ends with !includedir ConfigDir. AdminDSN is root over
// the Unix socket; TCPDSN is MariaDBTCPUser over TCP. The server is
// stopped and its files removed when the test ends.
func MariaDB(t testing.TB, opts Options) *Server {
	t.Helper()
	needBinary(t, MariaDBInstallDB, "mariadb-server")
	needBinary(t, MariaDBServer, "mariadb-server")

	s := newServer(t, "mariadb", "mysql", MariaDBServer)
	s.signal = syscall.SIGTERM
	s.timeout = opts.StartTimeout
	socket := filepath.Join(s.SocketDir, "mysqld.sock")
	cnf := filepath.Join(s.Dir, "my.cnf")
	// A temporary directory of its own: in the shared /tmp, a bootstrap
	// running beside another test's once failed on a temporary table that
	// was gone ("Unknown table 'mysql.tmp_user_sys'").
	tmp := filepath.Join(s.Dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatalf("make the server's temporary directory: %v", err)
	}
	if err := os.Chown(tmp, s.uid, s.gid); err != nil {
		t.Fatalf("make the server's temporary directory: %v", err)
	}
	lines := []string{
		"[mysqld]",
		"datadir = " + s.DataDir,
		"tmpdir = " + tmp,
		"socket = " + socket,
		"pid-file = " + filepath.Join(s.SocketDir, "mysqld.pid"),
		fmt.Sprintf("port = %d", s.Port),
		"bind-address = 127.0.0.1",
		"skip-name-resolve",
		"skip-log-bin",
		"innodb_buffer_pool_size = 16M",
		"innodb_flush_log_at_trx_commit = 0",
		"max_connections = 30",
	}
	lines = append(lines, opts.Config...)
	lines = append(lines, "", "!includedir "+s.ConfigDir, "")
	if err := os.WriteFile(cnf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatalf("write my.cnf: %v", err)
	}
	run(t, 0, 0, s.Dir, MariaDBInstallDB, "--defaults-file="+cnf, "--user=mysql",
		"--auth-root-authentication-method=normal", "--skip-test-db")

	admin := mysql.NewConfig()
	admin.User, admin.Net, admin.Addr, admin.DBName = "root", "unix", socket, "mysql"
	s.AdminDSN = admin.FormatDSN()
	s.args = []string{"--defaults-file=" + cnf}
	s.ready = func(ctx context.Context) error {
		db, err := sql.Open("mysql", s.AdminDSN)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(ctx)
	}
	s.start(t)
	t.Cleanup(func() { s.stop(t) })

	pw := make([]byte, 12)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	db, err := sql.Open("mysql", s.AdminDSN)
	if err != nil {
		t.Fatalf("open mariadb: %v", err)
	}
	defer db.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", MariaDBTCPUser, password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION", MariaDBTCPUser),
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("create mariadb test user: %v", err)
		}
	}
	tcp := mysql.NewConfig()
	tcp.User, tcp.Passwd, tcp.Net, tcp.Addr = MariaDBTCPUser, password, "tcp", s.Addr
	s.TCPDSN = tcp.FormatDSN()
	return s
}
