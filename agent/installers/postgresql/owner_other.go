//go:build !unix

package postgresql

import "io/fs"

func chownLike(string, fs.FileInfo) error { return nil }
