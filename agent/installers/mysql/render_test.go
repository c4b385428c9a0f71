package mysql

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func mustVersion(t *testing.T, s string) Version {
	t.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRenderOptions(t *testing.T) {
	const dir = "/etc/mysql/conf.d"
	for _, tc := range []struct {
		name, flavour, version, min string
		require                     bool
		golden                      string
	}{
		{name: "MariaDB 10.11 requiring TLS 1.2+", flavour: MariaDB, version: "10.11.19-MariaDB-0+deb12u1", min: "1.2", require: true, golden: "mariadb-10.11-require.cnf"},
		{name: "MariaDB 10.4 has no require_secure_transport", flavour: MariaDB, version: "10.4.34", min: "1.2", require: true, golden: "mariadb-10.4.cnf"},
		{name: "MariaDB 10.3 has no tls_version either", flavour: MariaDB, version: "10.3.39", min: "1.3", golden: "mariadb-10.3.cnf"},
		{name: "MySQL 8.0 TLS 1.3 only, plaintext allowed", flavour: MySQL, version: "8.0.36", min: "1.3", golden: "mysql-8.0-tls13.cnf"},
		{name: "MySQL 5.7", flavour: MySQL, version: "5.7.44", min: "1.2", require: true, golden: "mysql-5.7-require.cnf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Server{Flavour: tc.flavour, Version: mustVersion(t, tc.version)}.settings(dir, tc.min, tc.require)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, RenderOptions(st))
		})
	}
}

func TestMySQLStatements(t *testing.T) {
	srv := Server{Flavour: MySQL, Version: mustVersion(t, "8.0.36")}
	st, err := srv.settings("/etc/mysql/conf.d", "1.2", true)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "mysql-8.0-install.sql", []byte(strings.Join(MySQLInstallStatements(st), ";\n")+";\n"))
	golden(t, "mysql-8.0-remove.sql", []byte(strings.Join(MySQLRemoveStatements(), ";\n")+";\n"))

	t.Run("paths are quoted", func(t *testing.T) {
		st, _ := srv.settings(`/srv/o'brien\x`, "1.2", false)
		got := MySQLInstallStatements(st)[0]
		if want := `SET GLOBAL ssl_ca = '/srv/o\'brien\\x/reconciler-ca.pem'`; got != want {
			t.Errorf("statement %s, want %s", got, want)
		}
	})
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		flavour, version string
		reload, rst      bool
	}{
		{MySQL, "8.0.16", true, true},
		{MySQL, "8.0.15", false, true},
		{MySQL, "5.7.7", false, false},
		{MySQL, "8.4.0", true, true},
		{MariaDB, "10.4.0", true, false},
		{MariaDB, "10.3.39", false, false},
		{MariaDB, "10.5.2", true, true},
		{MariaDB, "5.5.5-10.11.19-MariaDB", true, true},
		{MariaDB, "11.4", true, true},
	} {
		srv := Server{Flavour: tc.flavour, Version: mustVersion(t, tc.version)}
		if got := srv.canReloadTLS(); got != tc.reload {
			t.Errorf("%s %s: can reload TLS %v, want %v", tc.flavour, tc.version, got, tc.reload)
		}
		if got := srv.hasRequireSecureTransport(); got != tc.rst {
			t.Errorf("%s %s: require_secure_transport %v, want %v", tc.flavour, tc.version, got, tc.rst)
		}
	}
	for _, bad := range []string{"", "latest", "x.1"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}
