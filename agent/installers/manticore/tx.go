package manticore

import (
	"errors"
	"io/fs"
	"os"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// tx is the file side of one Install or Remove: the TLS files, owned by
// the datastore's user, and the configuration file, which keeps its mode,
// owner and group. Both roll back together.
type tx struct {
	material installers.Files
	config   installers.Files

	configPath string
	configMeta meta
	haveMeta   bool

	materialChanged, configChanged bool
	touched                        []string // every path written or removed, for Result.Files
	secrets                        []string // paths whose previous versions must not outlive the change
}

func newTx(user string) *tx {
	return &tx{material: installers.Files{Owner: user}}
}

// write writes a TLS file; secret files have their previous version
// deleted once the change is committed.
func (t *tx) write(path string, data []byte, mode fs.FileMode, secret bool) error {
	changed, err := t.material.Write(path, data, mode)
	if err != nil {
		return err
	}
	if changed {
		t.materialChanged = true
		t.touched = append(t.touched, path)
		if secret {
			t.secrets = append(t.secrets, path)
		}
	}
	return nil
}

// remove removes a TLS file; its previous version is deleted on commit.
func (t *tx) remove(path string) error {
	changed, err := t.material.Remove(path)
	if err != nil {
		return err
	}
	if changed {
		t.materialChanged = true
		t.touched = append(t.touched, path)
		t.secrets = append(t.secrets, path)
	}
	return nil
}

// writeConfig replaces the configuration file, keeping its mode, owner
// and group.
func (t *tx) writeConfig(path string, data []byte) error {
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
		t.configChanged = true
		t.touched = append(t.touched, path)
	}
	return m.apply(path)
}

// rollback restores every file; the configuration first, so the server
// never reads a configuration naming files that are gone.
func (t *tx) rollback() error {
	err := t.config.Rollback()
	if t.haveMeta {
		err = errors.Join(err, t.configMeta.apply(t.configPath))
	}
	return errors.Join(err, t.material.Rollback())
}

// commit makes the change final and deletes the previous versions of key
// material (and, after a removal, of everything removed), so no old key
// outlives its use on disk.
func (t *tx) commit() error {
	t.config.Commit()
	t.material.Commit()
	var errs []error
	for _, p := range t.secrets {
		if err := os.Remove(p + installers.PreviousSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
