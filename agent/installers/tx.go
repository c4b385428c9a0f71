package installers

import (
	"errors"
	"io/fs"
	"os"
)

// Tx is the file side of one Install or Remove: the TLS files, owned by
// the datastore's user, and the configuration file, which keeps its mode,
// owner and group. Both roll back together.
type Tx struct {
	material Files
	config   Files

	configPath string
	configMeta meta
	haveMeta   bool

	// MaterialChanged and ConfigChanged say what Write, Remove and
	// WriteConfig changed; Touched lists every path written or removed,
	// for Result.Files; Secrets are the paths whose previous versions
	// must not outlive the change.
	MaterialChanged, ConfigChanged bool
	Touched                        []string
	Secrets                        []string
}

// NewTx starts a change whose TLS files belong to user.
func NewTx(user string) *Tx {
	return &Tx{material: Files{Owner: user}}
}

// Write writes a TLS file; secret files have their previous version
// deleted once the change is committed.
func (t *Tx) Write(path string, data []byte, mode fs.FileMode, secret bool) error {
	changed, err := t.material.Write(path, data, mode)
	if err != nil {
		return err
	}
	if changed {
		t.MaterialChanged = true
		t.Touched = append(t.Touched, path)
		if secret {
			t.Secrets = append(t.Secrets, path)
		}
	}
	return nil
}

// Remove removes a TLS file; its previous version is deleted on commit.
func (t *Tx) Remove(path string) error {
	changed, err := t.material.Remove(path)
	if err != nil {
		return err
	}
	if changed {
		t.MaterialChanged = true
		t.Touched = append(t.Touched, path)
		t.Secrets = append(t.Secrets, path)
	}
	return nil
}

// WriteConfig replaces the configuration file, keeping its mode, owner
// and group.
func (t *Tx) WriteConfig(path string, data []byte) error {
	m, err := statMeta(path)
	if err != nil {
		return err
	}
	t.configPath, t.configMeta, t.haveMeta = path, m, true
	changed, err := t.config.Write(path, data, m.mode)
	if err != nil {
		return err
	}
	if changed {
		t.ConfigChanged = true
		t.Touched = append(t.Touched, path)
	}
	return m.apply(path)
}

// Rollback restores every file; the configuration first, so the server
// never reads a configuration naming files that are gone.
func (t *Tx) Rollback() error {
	err := t.config.Rollback()
	if t.haveMeta {
		err = errors.Join(err, t.configMeta.apply(t.configPath))
	}
	return errors.Join(err, t.material.Rollback())
}

// Commit makes the change final and deletes the previous versions of key
// material (and, after a removal, of everything removed), so no old key
// outlives its use on disk.
func (t *Tx) Commit() error {
	t.config.Commit()
	t.material.Commit()
	var errs []error
	for _, p := range t.Secrets {
		if err := os.Remove(p + PreviousSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
