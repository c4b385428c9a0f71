package datastoretest_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
)

func TestPostgreSQLStartsAndRestarts(t *testing.T) {
	ctx := t.Context()
	s := datastoretest.PostgreSQL(t, datastoretest.Options{Config: []string{"application_name = 'x'"}})
	query := func(dsn string) string {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect %s: %v", dsn, err)
		}
		defer c.Close(ctx)
		var port string
		if err := c.QueryRow(ctx, "SHOW port").Scan(&port); err != nil {
			t.Fatal(err)
		}
		return port
	}
	if got := query(s.AdminDSN); got != itoa(s.Port) {
		t.Errorf("admin connection on port %s, want %d", got, s.Port)
	}
	query(s.TCPDSN + " sslmode=disable")
	pid := s.Pid()
	s.Restart(t)
	if s.Pid() == pid {
		t.Errorf("pid %d unchanged by Restart", pid)
	}
	query(s.AdminDSN)
}

func TestMariaDBStartsAndRestarts(t *testing.T) {
	ctx := context.Background()
	s := datastoretest.MariaDB(t, datastoretest.Options{})
	query := func(dsn string) int {
		t.Helper()
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var port int
		if err := db.QueryRowContext(ctx, "SELECT @@port").Scan(&port); err != nil {
			t.Fatalf("query %s: %v", dsn, err)
		}
		return port
	}
	if got := query(s.AdminDSN); got != s.Port {
		t.Errorf("admin connection on port %d, want %d", got, s.Port)
	}
	query(s.TCPDSN)
	pid := s.Pid()
	s.Restart(t)
	if s.Pid() == pid {
		t.Errorf("pid %d unchanged by Restart", pid)
	}
	query(s.TCPDSN)
}

func itoa(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
