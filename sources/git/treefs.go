package git

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxSymlinks bounds how many symbolic links one lookup follows, as
// Linux's ELOOP limit does.
const maxSymlinks = 40

var (
	errIsDir         = errors.New("is a directory")
	errNotDir        = errors.New("not a directory")
	errSymlinkEscape = errors.New("symbolic link leads out of the snapshot")
	errSymlinkLoop   = errors.New("too many levels of symbolic links")
)

// treeFS is a read-only fs.FS over a git tree, read from the object store
// without a checkout.
//
// go-git's object storage is not safe for concurrent use (its pack index
// and object cache are unguarded maps), so every access to it holds mu,
// which the Source shares with all its snapshots. Files are read whole
// while the lock is held: an open file never touches the store again, so
// readers contend only for the time it takes to read a blob.
//
// Symbolic links are followed while they stay inside the tree; a link
// leading above the root or to an absolute path is an error, as it is for
// sources/dir.
type treeFS struct {
	mu      *sync.Mutex
	store   storer.EncodedObjectStorer
	root    *object.Tree
	modTime time.Time // the commit's time, given to every entry
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.ReadLinkFS = (*treeFS)(nil)
)

// node is one entry of the tree: a file, a directory or a symbolic link.
type node struct {
	name string // base name, "." for the root
	mode filemode.FileMode
	hash plumbing.Hash
}

// isDir reports whether n lists as a directory. A submodule does: without
// its repository it is the empty directory a plain checkout leaves.
func (n node) isDir() bool { return n.mode == filemode.Dir || n.mode == filemode.Submodule }

// Open opens the named file or directory, following symbolic links.
func (f *treeFS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		entries, err := f.entries(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{info: f.info(n, 0), entries: entries}, nil
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &file{info: f.info(n, int64(len(data))), Reader: bytes.NewReader(data)}, nil
}

// ReadFile returns the content of the named file, following symbolic links.
func (f *treeFS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// ReadDir lists the named directory sorted by name, following symbolic
// links.
func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	entries, err := f.entries(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// Stat describes the named file, following symbolic links.
func (f *treeFS) Stat(name string) (fs.FileInfo, error) {
	return f.stat("stat", name, true)
}

// Lstat describes the named file without following a final symbolic link.
func (f *treeFS) Lstat(name string) (fs.FileInfo, error) {
	return f.stat("lstat", name, false)
}

// ReadLink returns the target of the named symbolic link.
func (f *treeFS) ReadLink(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := f.blob(n.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(target), nil
}

func (f *treeFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(op, name, follow)
	if err != nil {
		return nil, err
	}
	size, err := f.size(n)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return f.info(n, size), nil
}

// lookup finds the node at name. It follows symbolic links in directory
// components always and in the last component if follow is set. The
// caller holds f.mu.
func (f *treeFS) lookup(op, name string, follow bool) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p := name
	for hops := 0; ; hops++ {
		n, target, err := f.walk(p, follow)
		if err != nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if target == "" {
			n.name = path.Base(name) // the link's name, not its target's, as os.Stat does
			return n, nil
		}
		if hops == maxSymlinks {
			return node{}, &fs.PathError{Op: op, Path: name, Err: errSymlinkLoop}
		}
		p = target
	}
}

// walk descends the tree along the clean path p. If it meets a symbolic
// link to follow, it returns the path the link leads to instead, for the
// caller to walk again.
func (f *treeFS) walk(p string, follow bool) (n node, target string, err error) {
	n = node{name: ".", mode: filemode.Dir, hash: f.root.Hash}
	if p == "." {
		return n, "", nil
	}
	tree := f.root
	parts := strings.Split(p, "/")
	for i, part := range parts {
		// Entries are in git's order, not by name, so no binary search.
		j := slices.IndexFunc(tree.Entries, func(e object.TreeEntry) bool { return e.Name == part })
		if j < 0 {
			return node{}, "", fs.ErrNotExist
		}
		e := tree.Entries[j]
		n = node{name: e.Name, mode: e.Mode, hash: e.Hash}
		last := i == len(parts)-1
		if n.mode == filemode.Symlink && (follow || !last) {
			target, err := f.linkTarget(n.hash, parts[:i], parts[i+1:])
			return node{}, target, err
		}
		if last {
			break
		}
		if n.mode != filemode.Dir {
			return node{}, "", fs.ErrNotExist
		}
		if tree, err = object.GetTree(f.store, n.hash); err != nil {
			return node{}, "", err
		}
	}
	return n, "", nil
}

// linkTarget reads the symbolic link hash found in directory dir and
// returns the path it leads to, with the rest of the looked-up path
// appended. The link is resolved lexically, as git does on checkout.
func (f *treeFS) linkTarget(hash plumbing.Hash, dir, rest []string) (string, error) {
	link, err := f.blob(hash)
	if err != nil {
		return "", err
	}
	if path.IsAbs(string(link)) {
		return "", errSymlinkEscape
	}
	p := path.Join(path.Join(dir...), string(link), path.Join(rest...))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errSymlinkEscape
	}
	return p, nil
}

// entries lists the directory n sorted by name. The caller holds f.mu.
func (f *treeFS) entries(n node) ([]fs.DirEntry, error) {
	if n.mode == filemode.Submodule {
		return nil, nil
	}
	tree, err := object.GetTree(f.store, n.hash)
	if err != nil {
		return nil, err
	}
	entries := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, e := range tree.Entries {
		// A crafted tree can hold names no checkout would create.
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.Contains(e.Name, "/") {
			continue
		}
		entries = append(entries, &dirEntry{fsys: f, node: node{name: e.Name, mode: e.Mode, hash: e.Hash}})
	}
	// git sorts a directory as if its name ended in "/"; fs.ReadDir
	// promises plain name order.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// blob reads a whole blob. The caller holds f.mu.
func (f *treeFS) blob(hash plumbing.Hash) ([]byte, error) {
	b, err := object.GetBlob(f.store, hash)
	if err != nil {
		return nil, err
	}
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// size returns the size of n's content: the blob's for a file or a
// symbolic link, 0 for a directory. The caller holds f.mu.
func (f *treeFS) size(n node) (int64, error) {
	if n.isDir() {
		return 0, nil
	}
	obj, err := f.store.EncodedObject(plumbing.BlobObject, n.hash)
	if err != nil {
		return 0, err
	}
	return obj.Size(), nil
}

func (f *treeFS) info(n node, size int64) *fileInfo {
	mode, err := n.mode.ToOSFileMode()
	if err != nil {
		mode = 0o644 // an unknown mode in a crafted tree reads as a plain file
	}
	if n.isDir() {
		mode = fs.ModeDir | 0o755
	}
	return &fileInfo{name: n.name, size: size, mode: mode, modTime: f.modTime}
}

// fileInfo describes a node.
type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.modTime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

// dirEntry is a directory entry whose size is read only if Info is called.
type dirEntry struct {
	fsys *treeFS
	node node
}

func (d *dirEntry) Name() string      { return d.node.name }
func (d *dirEntry) IsDir() bool       { return d.node.isDir() }
func (d *dirEntry) Type() fs.FileMode { return d.fsys.info(d.node, 0).Mode().Type() }

// Info describes the entry itself: for a symbolic link, the link.
func (d *dirEntry) Info() (fs.FileInfo, error) {
	d.fsys.mu.Lock()
	defer d.fsys.mu.Unlock()
	size, err := d.fsys.size(d.node)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.node.name, Err: err}
	}
	return d.fsys.info(d.node, size), nil
}

// file is an open regular file, read into memory.
type file struct {
	info *fileInfo
	*bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

// dirFile is an open directory.
type dirFile struct {
	info    *fileInfo
	entries []fs.DirEntry
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errIsDir}
}

// ReadDir returns the next n entries, or all remaining ones if n <= 0, as
// fs.ReadDirFile specifies.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		rest := d.entries
		d.entries = nil
		return rest, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	batch := d.entries[:n]
	d.entries = d.entries[n:]
	return batch, nil
}
