//go:build unix

package mysql

import (
	"io/fs"
	"os"
	"syscall"
)

func chownLike(path string, info fs.FileInfo) error {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return os.Chown(path, int(st.Uid), int(st.Gid))
	}
	return nil
}
