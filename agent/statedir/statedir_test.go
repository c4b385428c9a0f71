package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReadRemove(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read("keys.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read of a missing file: %v, want fs.ErrNotExist", err)
	}
	for _, content := range []string{"first", "second"} {
		if err := d.Write("keys.json", []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := d.Read("keys.json")
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	info, err := os.Stat(filepath.Join(d.Path(), "keys.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v (%v), want 0600", info.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(d.Path())
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only keys.json: no temporary file left behind", len(entries))
	}
	if err := d.Remove("keys.json"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("keys.json"); err != nil {
		t.Errorf("second remove: %v, want none", err)
	}
}

func TestOpenRefusesADirectoryOthersCanEnter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(p)
	if err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("open of a 0755 directory: %v, want a refusal that says chmod 700", err)
	}
}

func TestFileNamesStayInside(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".", "..", "../escape", "a/b"} {
		if err := d.Write(name, []byte("x")); err == nil {
			t.Errorf("write %q succeeded, want a refusal", name)
		}
	}
}
