package installers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func TestFilesRollbackRestoresEverything(t *testing.T) {
	dir := t.TempDir()
	cert, key, gone := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "old.conf")
	os.WriteFile(cert, []byte("old cert"), 0o644)
	os.WriteFile(gone, []byte("old conf"), 0o644)

	var f Files
	if changed, err := f.Write(cert, []byte("new cert"), 0o644); err != nil || !changed {
		t.Fatalf("Write cert = %v, %v", changed, err)
	}
	if _, err := f.Write(key, []byte("new key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(key); info.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", info.Mode().Perm())
	}
	if got := read(t, cert+PreviousSuffix); got != "old cert" {
		t.Errorf("previous version kept = %q", got)
	}
	if err := f.Rollback(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{"cert": read(t, cert), "key": read(t, key), "conf": read(t, gone)}
	want := map[string]string{"cert": "old cert", "key": "<missing>", "conf": "old conf"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after rollback (-want +got):\n%s", diff)
	}
}

func TestFilesSameContentIsNoChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tls.crt")
	var f Files
	if _, err := f.Write(path, []byte("cert"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Commit()
	changed, err := f.Write(path, []byte("cert"), 0o644)
	if err != nil || changed || f.Changed() {
		t.Errorf("rewriting the same content: changed %v, err %v", changed, err)
	}
	if changed, _ := f.Write(path, []byte("cert"), 0o600); !changed {
		t.Error("a new mode is a change")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".crt" && e.Name() != "tls.crt"+PreviousSuffix {
			t.Errorf("stray file %s left behind", e.Name())
		}
	}
}

func TestFilesUnknownOwnerFailsBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	f := Files{Owner: "no-such-user-reconciler"}
	path := filepath.Join(dir, "tls.key")
	if _, err := f.Write(path, []byte("key"), 0o600); err == nil {
		t.Fatal("Write with an unknown owner succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("the file was written despite the error")
	}
}

func TestFilesRollbackKeepsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "server.crt")
	os.WriteFile(cert, []byte("old cert"), 0o640)
	if err := os.Chown(cert, 65534, 65534); err != nil {
		t.Skipf("cannot chown as this user: %v", err) // the agent runs as root; so does CI
	}
	var f Files
	if _, err := f.Write(cert, []byte("new cert"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Rollback(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(cert)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 || fileUID(info) != 65534 || fileGID(info) != 65534 {
		t.Errorf("after rollback: mode %v owner %d:%d; want the original 0640 65534:65534", info.Mode().Perm(), fileUID(info), fileGID(info))
	}
}
