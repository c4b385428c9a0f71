package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/agent/statedir"
)

func TestStatusSurvivesARestart(t *testing.T) {
	dir, err := statedir.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := loadStatus(dir)
	if err != nil || fresh.Generation != 0 || fresh.Phase != Pending {
		t.Fatalf("fresh state = %+v, %v; want Pending at generation 0", fresh, err)
	}
	want := Status{Instance: "orders-db", Phase: Active, Generation: 7, SSL: true, Verified: true,
		Serial: "3a:01", Fingerprint: "ab12", NotAfter: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), ReportedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	if err := saveStatus(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state after a restart (-want +got):\n%s", diff)
	}
	info, _ := os.Stat(filepath.Join(dir.Path(), stateFile))
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", info.Mode().Perm())
	}
	os.WriteFile(filepath.Join(dir.Path(), stateFile), []byte("{not json"), 0o600)
	if _, err := loadStatus(dir); err == nil || !strings.Contains(err.Error(), "move the file away") {
		t.Errorf("damaged state: %v, want an error saying how to recover", err)
	}
}
