package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/reconciler-dev/reconciler/agent/atomicfile"
)

// Dir is an open state directory.
type Dir struct {
	path string
}

// Open returns the state directory at path, creating it (0700) if it is
// missing. It refuses one that group or others may read, write or enter.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("open state directory: no path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("open state directory %s: not a directory", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("open state directory %s: mode %04o lets other users in, and the RPC keys live there: chmod 700 %s", path, perm, path)
	}
	return &Dir{path: path}, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Read returns the named file's content; a missing file is an error
// wrapping fs.ErrNotExist.
func (d *Dir) Read(name string) ([]byte, error) {
	p, err := d.file(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	return data, nil
}

// Write replaces the named file with data, atomically, mode 0600.
func (d *Dir) Write(name string, data []byte) error {
	p, err := d.file(name)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p, data, 0o600, -1, -1); err != nil {
		return fmt.Errorf("write agent state %s: %w", name, err)
	}
	return nil
}

// Remove deletes the named file; a missing one is not an error.
func (d *Dir) Remove(name string) error {
	p, err := d.file(name)
	if err != nil {
		return err
	}
	if err := atomicfile.Remove(p); err != nil {
		return fmt.Errorf("remove agent state %s: %w", name, err)
	}
	return nil
}

func (d *Dir) file(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("agent state file %q: not a plain file name", name)
	}
	return filepath.Join(d.path, name), nil
}
