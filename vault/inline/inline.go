package inline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

// DefaultMinRemaining is how much validity a certificate must have left to
// be handed out, unless WithMinRemaining says otherwise.
const DefaultMinRemaining = 24 * time.Hour

var _ vault.Issuer = (*Issuer)(nil)

// Issuer hands out the certificates found in a directory, one
// subdirectory per instance. It is safe for concurrent use.
type Issuer struct {
	dir          string
	caBundle     string
	minRemaining time.Duration
}

// Option configures an Issuer.
type Option func(*Issuer)

// WithCABundle names the fleet's CA bundle, a PEM file whose certificates
// end with the root: what CAChain returns. Without it CAChain fails, since
// each instance's ca.crt speaks for that instance alone.
func WithCABundle(file string) Option { return func(i *Issuer) { i.caBundle = file } }

// WithMinRemaining sets how much validity a certificate must have left to
// be handed out (default DefaultMinRemaining), so that an instance is not
// given a certificate about to expire. Zero accepts any unexpired one.
func WithMinRemaining(d time.Duration) Option { return func(i *Issuer) { i.minRemaining = d } }

// New returns an Issuer reading dir, which must exist. A relative dir is
// made absolute now. The CA bundle, if given, is read and checked now too,
// so a wrong path fails at start-up rather than at the first CAChain.
func New(dir string, opts ...Option) (*Issuer, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open certificate directory %s: %w", dir, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open certificate directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("open certificate directory %s: not a directory", abs)
	}
	i := &Issuer{dir: abs, minRemaining: DefaultMinRemaining}
	for _, o := range opts {
		o(i)
	}
	if i.minRemaining < 0 {
		return nil, fmt.Errorf("configure inline issuer: minimum remaining validity %s is negative", i.minRemaining)
	}
	if i.caBundle != "" {
		if i.caBundle, err = filepath.Abs(i.caBundle); err != nil {
			return nil, fmt.Errorf("configure inline issuer: CA bundle: %w", err)
		}
		if _, err := i.readCABundle(); err != nil {
			return nil, fmt.Errorf("configure inline issuer: %w", err)
		}
	}
	return i, nil
}

// Issue reads the instance's tls.crt, tls.key and ca.crt afresh, so that a
// replaced file is picked up, and returns them once Validate accepts them
// for req. A missing, unreadable or oversized file, a key file open to
// group or others, and an instance name that is not a plain directory name
// are refused like a failed validation, with an error wrapping
// vault.ErrDenied that names the file and the fix.
func (i *Issuer) Issue(ctx context.Context, req vault.CertificateRequest) (*vault.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", req.Instance, err)
	}
	if err := CheckInstance(req.Instance); err != nil {
		return nil, err
	}
	// os.Root resolves every path, symbolic links included, inside the
	// directory: a link out of it is refused, not followed.
	root, err := os.OpenRoot(i.dir)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", req.Instance, err)
	}
	defer root.Close()
	fsys := root.FS()

	if _, err := fs.Stat(fsys, req.Instance); errors.Is(err, fs.ErrNotExist) {
		return nil, &FileError{File: req.Instance + "/", Problem: "does not exist", Err: err,
			Fix: fmt.Sprintf("create %s holding %s, %s and %s", filepath.Join(i.dir, req.Instance), CertFile, KeyFile, CAFile)}
	}
	b := Bundle{CertName: req.Instance + "/" + CertFile, KeyName: req.Instance + "/" + KeyFile, CAName: req.Instance + "/" + CAFile}
	if b.Cert, err = i.file(fsys, b.CertName, "put the instance's certificate there, PEM, the leaf first, then any intermediates").read(); err != nil {
		return nil, err
	}
	key := i.file(fsys, b.KeyName, "put the certificate's private key there, PEM, readable by its owner only (chmod 600)")
	key.private = true
	if b.Key, err = key.read(); err != nil {
		return nil, err
	}
	defer clear(b.Key)
	if b.CA, err = i.file(fsys, b.CAName, "put the CA chain that issued the certificate there, PEM, root last").read(); err != nil {
		return nil, err
	}
	return Validate(req, b, time.Now(), i.minRemaining)
}

// Revoke fails with an error wrapping errors.ErrUnsupported: the
// certificates came from the owner's CA, and only that CA can revoke them.
func (i *Issuer) Revoke(ctx context.Context, serial string) error {
	return fmt.Errorf("revoke certificate %s: %w: the inline provider hands out certificates it did not issue; revoke it at your CA", serial, errors.ErrUnsupported)
}

// CAChain returns the fleet CA bundle given by WithCABundle, read afresh
// and checked to end with a self-signed root. Without a bundle it fails
// with an error wrapping vault.ErrDenied.
func (i *Issuer) CAChain(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read CA chain: %w", err)
	}
	if i.caBundle == "" {
		return nil, fmt.Errorf("read CA chain: %w: the inline provider has no fleet CA bundle (each instance's %s is that instance's own); configure one with WithCABundle", vault.ErrDenied, CAFile)
	}
	chain, err := i.readCABundle()
	if err != nil {
		return nil, fmt.Errorf("read CA chain: %w", err)
	}
	return chain, nil
}

func (i *Issuer) readCABundle() ([]byte, error) {
	f := file{fsys: os.DirFS(filepath.Dir(i.caBundle)), name: filepath.Base(i.caBundle), display: i.caBundle, path: i.caBundle,
		missing: "put the fleet's CA bundle there, PEM, root last, or fix the CA bundle's path"}
	data, err := f.read()
	if err != nil {
		return nil, err
	}
	return ValidateCAChain(i.caBundle, data)
}

// file is one file to read, and how to talk about it.
type file struct {
	fsys    fs.FS
	name    string // its path in fsys
	display string // how errors name it
	path    string // its path on disk, for fixes that are commands
	missing string // the fix when it does not exist
	private bool   // a key: it must be open to its owner only
}

func (i *Issuer) file(fsys fs.FS, name, missing string) file {
	return file{fsys: fsys, name: name, display: name, path: filepath.Join(i.dir, filepath.FromSlash(name)), missing: missing}
}

// read checks the file's kind, size and mode before reading it.
func (f file) read() ([]byte, error) {
	info, err := fs.Stat(f.fsys, f.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &FileError{File: f.display, Problem: "does not exist", Fix: f.missing, Err: err}
	case err != nil:
		return nil, &FileError{File: f.display, Problem: fmt.Sprintf("cannot be read (%v)", err), Fix: "let the reconciler's user read it, and keep it inside the certificate directory", Err: err}
	case !info.Mode().IsRegular():
		return nil, &FileError{File: f.display, Problem: fmt.Sprintf("is not a regular file (mode %s)", info.Mode()), Fix: "replace it with the PEM file"}
	case info.Size() > MaxFileSize:
		return nil, f.oversize(info.Size())
	case f.private && runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0:
		return nil, &FileError{File: f.display, Problem: fmt.Sprintf("is open to group or others (mode %#o)", info.Mode().Perm()),
			Fix: "restrict it to its owner: chmod 600 " + f.path}
	}
	r, err := f.fsys.Open(f.name)
	if err != nil {
		return nil, &FileError{File: f.display, Problem: fmt.Sprintf("cannot be read (%v)", err), Fix: "let the reconciler's user read it", Err: err}
	}
	defer r.Close()
	// The size can grow between Stat and here; read one byte past the cap
	// to notice.
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		clear(data)
		return nil, &FileError{File: f.display, Problem: fmt.Sprintf("cannot be read (%v)", err), Fix: "let the reconciler's user read it", Err: err}
	}
	if len(data) > MaxFileSize {
		clear(data)
		return nil, f.oversize(int64(len(data)))
	}
	return data, nil
}

func (f file) oversize(n int64) error {
	return &FileError{File: f.display, Problem: fmt.Sprintf("is %d bytes, over the %d-byte limit", n, MaxFileSize),
		Fix: "it should hold a few PEM blocks: check it is the right file"}
}
