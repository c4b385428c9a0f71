package mysql

import (
	"testing"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/installers"
)

// TestAVersionWithoutPatchIsAskedOfTheServer: "10.11" in the config says
// nothing of what 10.11.19 supports; the installer asks the server.
func TestAVersionWithoutPatchIsAskedOfTheServer(t *testing.T) {
	s := datastoretest.MariaDB(t, datastoretest.Options{})
	for _, tc := range []struct {
		version, dsn string
		wantPatch    bool
	}{
		{"10.11", s.AdminDSN, true},
		{"", s.AdminDSN, true},
		{"10.11", "", false},
		{"10.11.3", s.AdminDSN, false}, // exact in the config: taken as is
	} {
		i := New(installers.Datastore{Type: MariaDB, Version: tc.version, AdminDSN: tc.dsn})
		got, err := i.server(t.Context())
		if err != nil {
			t.Fatalf("%q: %v", tc.version, err)
		}
		if (got.Version.Patch > 3) != tc.wantPatch || got.Version.Major != 10 || got.Version.Minor != 11 {
			t.Errorf("version %q, dsn %v: got %+v", tc.version, tc.dsn != "", got.Version)
		}
	}
}
