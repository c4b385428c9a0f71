//go:build unix

package installers

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// meta is what a rewrite must not change about a configuration file: its
// mode, owner and group. (Files gives the files it writes one owner, which
// suits key material but would lock a server out of a configuration owned
// root:mongodb 0640.)
type meta struct {
	mode     fs.FileMode
	uid, gid int
}

func statMeta(path string) (meta, error) {
	info, err := os.Stat(path)
	if err != nil {
		return meta{}, fmt.Errorf("stat %s: %w", path, err)
	}
	m := meta{mode: info.Mode().Perm(), uid: -1, gid: -1}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		m.uid, m.gid = int(st.Uid), int(st.Gid)
	}
	return m, nil
}

// apply gives path this mode, owner and group where they differ.
func (m meta) apply(path string) error {
	now, err := statMeta(path)
	if err != nil {
		return err
	}
	if (m.uid >= 0 && now.uid != m.uid) || (m.gid >= 0 && now.gid != m.gid) {
		if err := os.Chown(path, m.uid, m.gid); err != nil {
			return fmt.Errorf("restore owner of %s: %w", path, err)
		}
	}
	if now.mode != m.mode {
		if err := os.Chmod(path, m.mode); err != nil {
			return fmt.Errorf("restore mode of %s: %w", path, err)
		}
	}
	return nil
}
