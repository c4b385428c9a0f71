package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWholeFilesAndLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "server.key")
	for _, tc := range []struct {
		data string
		mode os.FileMode
	}{{"first", 0o644}, {"second, longer than the first", 0o600}} {
		if err := Write(p, []byte(tc.data), tc.mode, -1, -1); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != tc.data {
			t.Fatalf("read back %q, %v; want %q", got, err, tc.data)
		}
		if info, _ := os.Stat(p); info.Mode().Perm() != tc.mode {
			t.Errorf("mode %v, want %v", info.Mode().Perm(), tc.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the directory, want only the file: a temporary file was left", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil, 0o600, -1, -1); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p); err != nil {
		t.Errorf("removing a missing file: %v, want none", err)
	}
}
