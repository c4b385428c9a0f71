package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// A KEK change writes, for every sealed file X, X.next (sealed under the
// new KEK) and X.prev (X as it is, under the old KEK), then commits by
// writing the journal kek-change, then copies X.next over X, removes the
// journal and last the copies. While the journal exists every X.next and
// X.prev exists in full, so the change can be finished (X.next over X) or
// rolled back (X.prev over X) from any point, any number of times, in
// either direction: the copies are never consumed, only copied. doc.go
// says which KEK opens the directory at each point.
const (
	nextSuffix = ".next"
	prevSuffix = ".prev"
)

// sealedFiles are the state files sealed under the KEK, by name, with
// their purposes.
var sealedFiles = map[string]string{
	caKeyFile:   purposeCAKey,
	keyringFile: purposeKeyring,
}

// kekJournal is the content of kek-change, the commit record of a KEK
// change. It names the KEKs by their one-way identifiers only.
type kekJournal struct {
	Format int      `json:"format"`
	From   string   `json:"from"`
	To     string   `json:"to"`
	Files  []string `json:"files"`
}

const kekJournalFormat = 1

// kekChangeHook, when set (by tests only), is called after each step of a
// KEK change with the step's name; an error it returns is the step's
// error, and a panic stands for a crash.
var kekChangeHook func(step string) error

func kekChangeStep(name string) error {
	if kekChangeHook == nil {
		return nil
	}
	return kekChangeHook(name)
}

// ChangeKEK re-seals the local provider's state in dir, made under the KEK
// from, under the KEK to: afterwards to opens it and from does not. The CA,
// the master key versions (so every key they wrapped) and the revocations
// are unchanged: it replaces the KEK, not the keys it protects.
//
// ChangeKEK refuses, with an error wrapping ErrInUse and without changing
// anything, while a Provider on dir is open in this process or another:
// stop the reconciler first, and start it again with the new KEK. (Where
// the platform has no flock, it cannot tell: stop the reconciler anyway.)
// It refuses a from that does not open the state with an error wrapping
// ErrWrongKEK, again changing nothing, and a directory holding no state.
// When the state is already sealed under to, it returns nil.
//
// The change is crash-safe. Until it commits, only from opens the
// directory; once committed, both do until it is finished: New (or a
// later ChangeKEK) with to finishes it, New with from rolls it back. An
// error after the commit says so; the directory is then left for New to
// settle. See doc.go for the files involved.
//
// opts are New's; WithLogger logs the change.
func ChangeKEK(ctx context.Context, dir string, from, to KEK, opts ...Option) error {
	switch {
	case dir == "":
		return errors.New("change KEK: no state directory given")
	case from.key == nil:
		return fmt.Errorf("change KEK: the old KEK: %w", errNoKEK)
	case to.key == nil:
		return fmt.Errorf("change KEK: the new KEK: %w", errNoKEK)
	case *from.key == *to.key:
		return errors.New("change KEK: the new KEK is the old one (if a change to it was interrupted, opening the state with it finishes the change)")
	}
	if err := requireState(dir); err != nil {
		return fmt.Errorf("change KEK: %w", err)
	}
	inUse, err := lockInUse(ctx, filepath.Join(dir, inUseFile), true)
	if errors.Is(err, ErrInUse) {
		return fmt.Errorf("change KEK of %s: another process (a running reconciler?) has the state open; stop it, change the KEK, then start it with the new KEK: %w", dir, err)
	}
	if err != nil {
		return fmt.Errorf("change KEK of %s: %w", dir, err)
	}
	if inUse != nil {
		defer inUse.Close()
	}
	p, err := New(ctx, dir, from, append(opts, func(o *options) { o.inUseHeld = true })...)
	if errors.Is(err, ErrWrongKEK) && sealedUnder(dir, to) {
		return nil // done before: the operator ran it again
	}
	if err != nil {
		return fmt.Errorf("change KEK of %s: %w", dir, err)
	}
	defer p.Close()
	if err := p.withLock(ctx, func() error { return p.changeKEK(to) }); err != nil {
		return fmt.Errorf("change KEK of %s: %w", dir, err)
	}
	p.log.Info("changed the KEK of the local key provider state", "dir", dir, "old_kek_id", from.id(), "new_kek_id", to.id())
	return nil
}

// requireState refuses a directory without state: ChangeKEK must never
// create one, as New would.
func requireState(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: there is no local key provider state to re-seal: %w", dir, err)
	}
	if err != nil {
		return fmt.Errorf("open state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	for _, name := range []string{caKeyFile, keyringFile, kekChangeFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s holds no local key provider state", dir)
}

// sealedUnder reports whether every sealed file of dir opens under k, with
// no KEK change in progress. It only reads.
func sealedUnder(dir string, k KEK) bool {
	if _, err := os.Stat(filepath.Join(dir, kekChangeFile)); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	for name, purpose := range sealedFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return false
		}
		pt, err := open(k, purpose, data)
		if err != nil {
			return false
		}
		clear(pt)
	}
	return true
}

// changeKEK re-seals the state, held by p under its KEK, under to. The
// caller holds the lock.
func (p *Provider) changeKEK(to KEK) (err error) {
	names := slices.Sorted(maps.Keys(sealedFiles))
	// Read and re-seal everything before writing anything: a file that
	// does not open under the old KEK stops the change untouched.
	prev := map[string][]byte{}
	next := map[string][]byte{}
	for _, name := range names {
		purpose := sealedFiles[name]
		data, err := os.ReadFile(p.path(name))
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		pt, err := p.openSealed(name, purpose)
		if err != nil {
			return err
		}
		prev[name], next[name] = data, seal(to, purpose, pt)
		clear(pt)
	}

	committed := false
	defer func() {
		// Before the commit the state is untouched: take the copies away.
		// After it, New settles the change.
		if err != nil && !committed {
			if rmErr := p.removeKEKChangeCopies(); rmErr != nil {
				err = errors.Join(err, rmErr)
			}
		}
		if err != nil && committed {
			err = fmt.Errorf("%w (the change is committed but unfinished: opening the state with the new KEK finishes it, with the old KEK rolls it back)", err)
		}
	}()
	for _, name := range names {
		if err := writeFileAtomic(p.path(name+prevSuffix), prev[name]); err != nil {
			return fmt.Errorf("keep the old %s: %w", name, err)
		}
		if err := kekChangeStep("wrote " + name + prevSuffix); err != nil {
			return err
		}
		if err := writeFileAtomic(p.path(name+nextSuffix), next[name]); err != nil {
			return fmt.Errorf("write the new %s: %w", name, err)
		}
		if err := kekChangeStep("wrote " + name + nextSuffix); err != nil {
			return err
		}
	}
	j, err := json.Marshal(kekJournal{Format: kekJournalFormat, From: p.kek.id(), To: to.id(), Files: names})
	if err != nil {
		return fmt.Errorf("encode the KEK change journal: %w", err)
	}
	if err := writeFileAtomic(p.path(kekChangeFile), j); err != nil {
		// Syncing the directory may fail after the rename: a journal in
		// place is a commit, whose copies must stay.
		if _, statErr := os.Stat(p.path(kekChangeFile)); statErr == nil {
			committed = true
		}
		return fmt.Errorf("commit the KEK change: %w", err)
	}
	committed = true
	if err := kekChangeStep("committed"); err != nil {
		return err
	}
	return p.settleKEKChange(names, nextSuffix, to)
}

// recoverKEKChange settles a KEK change a crash (or an error) left in the
// state directory: one that committed is finished when p's KEK is the new
// KEK and rolled back when it is the old one; the copies of one that did
// not are removed. The caller holds the lock.
func (p *Provider) recoverKEKChange() error {
	data, err := os.ReadFile(p.path(kekChangeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return p.removeKEKChangeCopies()
	}
	if err != nil {
		return fmt.Errorf("read the KEK change journal: %w", err)
	}
	var j kekJournal
	if err := json.Unmarshal(data, &j); err != nil || j.Format != kekJournalFormat || !knownSealedFiles(j.Files) {
		return fmt.Errorf("%s in %s is not a KEK change journal this reconciler can read; the *.prev files hold the state under the old KEK, the *.next files under the new: restore the directory from a backup: %w", kekChangeFile, p.dir, ErrDamaged)
	}
	switch id := p.kek.id(); id {
	case j.To:
		if err := p.settleKEKChange(j.Files, nextSuffix, p.kek); err != nil {
			return fmt.Errorf("finish the interrupted KEK change: %w", err)
		}
		p.log.Info("finished an interrupted KEK change", "dir", p.dir, "kek_id", id)
	case j.From:
		if err := p.settleKEKChange(j.Files, prevSuffix, p.kek); err != nil {
			return fmt.Errorf("roll back the interrupted KEK change: %w", err)
		}
		p.log.Warn("rolled back an interrupted KEK change: the state is sealed under the old KEK again; change the KEK again", "dir", p.dir, "kek_id", id)
	default:
		return fmt.Errorf("a KEK change from the KEK with identifier %s to the one with identifier %s was interrupted in %s, and this KEK is neither: open the state with the new KEK to finish the change, or with the old one to roll it back: %w", j.From, j.To, p.dir, ErrWrongKEK)
	}
	return nil
}

func knownSealedFiles(names []string) bool {
	if len(names) != len(sealedFiles) {
		return false
	}
	for _, name := range names {
		if _, ok := sealedFiles[name]; !ok {
			return false
		}
	}
	return true
}

// settleKEKChange copies every name+suffix, which must open under k, over
// name, then ends the change: the journal goes first, so that the copies
// are complete for as long as it exists, then the copies. The caller
// holds the lock.
func (p *Provider) settleKEKChange(names []string, suffix string, k KEK) error {
	copies := map[string][]byte{}
	for _, name := range names {
		data, err := os.ReadFile(p.path(name + suffix))
		if err != nil {
			return fmt.Errorf("read %s: %w: %w", name+suffix, err, ErrDamaged)
		}
		pt, err := open(k, sealedFiles[name], data)
		if err != nil {
			return fmt.Errorf("open %s in %s: %w: %w", name+suffix, p.dir, err, ErrDamaged)
		}
		clear(pt)
		copies[name] = data
	}
	for _, name := range names {
		if err := writeFileAtomic(p.path(name), copies[name]); err != nil {
			return err
		}
		if err := kekChangeStep("copied " + name + suffix); err != nil {
			return err
		}
	}
	if err := os.Remove(p.path(kekChangeFile)); err != nil {
		return fmt.Errorf("end the KEK change: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		return fmt.Errorf("end the KEK change: %w", err)
	}
	if err := kekChangeStep("ended"); err != nil {
		return err
	}
	return p.removeKEKChangeCopies()
}

// removeKEKChangeCopies removes what a KEK change leaves beside the state
// when no journal commits it: the *.next and *.prev copies, and the
// temporary files of writes a crash interrupted (which may hold the state
// under either KEK). The caller holds the lock, and no journal exists.
func (p *Provider) removeKEKChangeCopies() error {
	var doomed []string
	temporary := func(base string) error {
		tmps, err := filepath.Glob(p.path("." + base + ".*.tmp"))
		doomed = append(doomed, tmps...)
		return err
	}
	if err := temporary(kekChangeFile); err != nil {
		return fmt.Errorf("remove KEK change copies: %w", err)
	}
	for name := range sealedFiles {
		doomed = append(doomed, p.path(name+nextSuffix), p.path(name+prevSuffix))
		for _, base := range []string{name, name + nextSuffix, name + prevSuffix} {
			if err := temporary(base); err != nil {
				return fmt.Errorf("remove KEK change copies: %w", err)
			}
		}
	}
	removed := false
	for _, f := range doomed {
		err := os.Remove(f)
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("remove KEK change copies: %w", err)
		}
	}
	if !removed {
		return nil
	}
	if err := syncDir(p.dir); err != nil {
		return fmt.Errorf("remove KEK change copies: %w", err)
	}
	return kekChangeStep("removed copies")
}
