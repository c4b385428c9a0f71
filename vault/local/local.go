package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

// Files of the state directory; doc.go says what each holds.
const (
	caCertFile      = "ca.pem"
	caKeyFile       = "ca-key.enc"
	keyringFile     = "keyring.enc"
	revocationsFile = "revocations.json"
	lockFile        = "lock"
	inUseFile       = "in-use"
	kekChangeFile   = "kek-change"
)

// DefaultMaxTTL caps the lifetime of issued certificates unless WithMaxTTL
// says otherwise.
const DefaultMaxTTL = 8760 * time.Hour

// ErrWrongKEK is returned by New when the state directory was created with
// another KEK.
var ErrWrongKEK = errors.New("wrong KEK")

// ErrDamaged is returned by New when a state file is missing, corrupted or
// tampered with: it must be restored from a backup.
var ErrDamaged = errors.New("local key provider state damaged")

// ErrInUse is returned by ChangeKEK while a Provider, in this process or
// another (a running reconciler), has the state directory open.
var ErrInUse = errors.New("local key provider state in use")

var (
	_ vault.Issuer        = (*Provider)(nil)
	_ vault.KeyWrapper    = (*Provider)(nil)
	_ vault.MasterRotator = (*Provider)(nil)
)

// Provider is the local key provider: a vault.Issuer, vault.KeyWrapper and
// vault.MasterRotator backed by a state directory. It is safe for
// concurrent use, and several Providers (in one process or several) may
// share a directory.
type Provider struct {
	dir        string
	kek        KEK
	log        *slog.Logger
	maxTTL     time.Duration
	minDecrypt int

	ca *authority // set by New, never changed

	// fileMu serialises this Provider's state writes before they take the
	// directory lock, which serialises them with other Providers.
	fileMu sync.Mutex

	// ringMu guards the keyring as last read, and keyring.enc's file
	// information then, which tells when another Provider rotated it.
	ringMu   sync.RWMutex
	ring     *keyring
	ringFile os.FileInfo

	// inUse holds the in-use lock, shared, until Close (nil when the
	// platform has no such lock, or ChangeKEK holds it exclusively).
	inUse     *os.File
	closeOnce sync.Once
}

// Option configures New.
type Option func(*options)

type options struct {
	log        *slog.Logger
	maxTTL     time.Duration
	minDecrypt int
	// inUseHeld is set by ChangeKEK, which holds the in-use lock itself.
	inUseHeld bool
}

// WithLogger sets the logger for state changes (CA and master key
// creation, issues, revocations, rotations). Nothing logged holds key
// material. A nil logger, the default, discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithMaxTTL caps the lifetime of issued certificates (DefaultMaxTTL when
// not given): a longer TTL is shortened to it.
func WithMaxTTL(d time.Duration) Option {
	return func(o *options) { o.maxTTL = d }
}

// WithMinDecryptionVersion refuses to unwrap (or rewrap) keys wrapped
// under master key versions older than n, as Vault transit's
// min_decryption_version does: after rotating and rewrapping every stored
// key, raise it so that a leaked old master key version is no longer
// usable through this provider. Zero, the default, accepts every version;
// n above the newest version is an error.
func WithMinDecryptionVersion(n int) Option {
	return func(o *options) { o.minDecrypt = n }
}

// New opens the local provider's state in dir, creating dir (mode 0700),
// the CA and the first master key version if it is empty. kek seals the
// state; it must be the KEK the state was created with (ErrWrongKEK
// otherwise). There is no default KEK: see LoadKEK and KEKFromEnv.
//
// New finishes a KEK change that was interrupted after it committed when
// kek is the new KEK, and rolls it back when kek is the old one (see
// ChangeKEK); while ChangeKEK runs, New waits for it. The Provider holds
// the directory open, which stops ChangeKEK, until Close.
func New(ctx context.Context, dir string, kek KEK, opts ...Option) (*Provider, error) {
	o := options{maxTTL: DefaultMaxTTL}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case dir == "":
		return nil, errors.New("open local key provider: no state directory given")
	case kek.key == nil:
		return nil, fmt.Errorf("open local key provider: %w", errNoKEK)
	case o.maxTTL <= 0:
		return nil, fmt.Errorf("open local key provider: maximum TTL %s is not positive", o.maxTTL)
	case o.minDecrypt < 0:
		return nil, fmt.Errorf("open local key provider: minimum decryption version %d is negative", o.minDecrypt)
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := prepareDir(dir); err != nil {
		return nil, fmt.Errorf("open local key provider: %w", err)
	}
	p := &Provider{dir: dir, kek: kek, log: log, maxTTL: o.maxTTL, minDecrypt: o.minDecrypt}
	if !o.inUseHeld {
		f, err := lockInUse(ctx, p.path(inUseFile), false)
		if err != nil {
			return nil, fmt.Errorf("open local key provider: %w", err)
		}
		p.inUse = f
	}
	if err := p.withLock(ctx, func() error { return p.loadOrCreate() }); err != nil {
		p.Close()
		return nil, fmt.Errorf("open local key provider: %w", err)
	}
	if latest := p.ring.latest(); o.minDecrypt > latest {
		p.Close()
		return nil, fmt.Errorf("open local key provider: minimum decryption version %d is above the newest master key version %d", o.minDecrypt, latest)
	}
	return p, nil
}

// Close releases the state directory, so that ChangeKEK may run once
// every Provider on it is closed (or its process gone). The Provider must
// not be used afterwards. Close is idempotent and always returns nil.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		if p.inUse != nil {
			p.inUse.Close() // releases the lock; nothing was written to it
		}
	})
	return nil
}

// Dir returns the state directory.
func (p *Provider) Dir() string { return p.dir }

// prepareDir creates dir private to its owner, and refuses an existing one
// others can write to: they could replace the state files.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("state directory %s is writable by group or others (mode %04o); restrict it with: chmod 700 %s", dir, perm, dir)
	}
	return nil
}

// withLock runs f holding this Provider's mutex and the directory lock.
func (p *Provider) withLock(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.fileMu.Lock()
	defer p.fileMu.Unlock()
	unlock, err := lockDir(ctx, p.path(lockFile))
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

func (p *Provider) path(name string) string { return filepath.Join(p.dir, name) }

// loadOrCreate reads the CA and the keyring, or creates both in an empty
// directory. A directory holding part of the state is damaged: creating
// the missing part would silently orphan every certificate or wrapped key
// made with the lost one. The caller holds the lock.
func (p *Provider) loadOrCreate() error {
	if err := p.recoverKEKChange(); err != nil {
		return err
	}
	present := map[string]bool{}
	for _, name := range []string{caKeyFile, keyringFile, caCertFile} {
		_, err := os.Stat(p.path(name))
		switch {
		case err == nil:
			present[name] = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("stat state: %w", err)
		}
	}
	if len(present) == 0 {
		ring, err := newKeyring()
		if err != nil {
			return err
		}
		fi, err := p.writeKeyring(ring)
		if err != nil {
			return err
		}
		ca, err := p.createCA()
		if err != nil {
			return err
		}
		p.ca = ca
		p.remember(ring, fi)
		p.log.Info("created local key provider state", "dir", p.dir, "ca_fingerprint", ca.fingerprint, "master_version", ring.latest())
		return nil
	}
	for _, name := range []string{caKeyFile, keyringFile} {
		if !present[name] {
			return fmt.Errorf("%s is missing from %s, which holds the rest of the state: restore it from a backup (or, if the directory was never used, remove it to start over): %w", name, p.dir, ErrDamaged)
		}
	}
	ca, err := p.loadCA()
	if err != nil {
		return err
	}
	ring, fi, err := p.readKeyring()
	if err != nil {
		return err
	}
	p.ca = ca
	p.remember(ring, fi)
	return nil
}

// openSealed reads and decrypts a sealed state file, turning what went
// wrong into an error that says what to do.
func (p *Provider) openSealed(name, purpose string) ([]byte, error) {
	data, err := os.ReadFile(p.path(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	pt, err := open(p.kek, purpose, data)
	switch {
	case errors.Is(err, errWrongKEK):
		return nil, fmt.Errorf("open %s: the KEK does not match the one the state in %s was created with (use that KEK, or restore the state it belongs to): %w", name, p.dir, ErrWrongKEK)
	case errors.Is(err, errDamaged):
		return nil, fmt.Errorf("open %s in %s: it is corrupted or was tampered with (it does not authenticate under the KEK it names); restore it from a backup: %w", name, p.dir, ErrDamaged)
	case err != nil:
		return nil, fmt.Errorf("open %s in %s: %w: %w", name, p.dir, err, ErrDamaged)
	}
	return pt, nil
}
