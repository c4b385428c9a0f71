//go:build !unix

package installers

import (
	"fmt"
	"io/fs"
	"os"
)

// meta is what a rewrite must not change about a configuration file.
type meta struct{ mode fs.FileMode }

func statMeta(path string) (meta, error) {
	info, err := os.Stat(path)
	if err != nil {
		return meta{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return meta{mode: info.Mode().Perm()}, nil
}

func (m meta) apply(path string) error { return os.Chmod(path, m.mode) }
