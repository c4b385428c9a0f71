package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/agent/statedir"
)

// stateFile is the last applied state, kept in Config.StateDir so that an
// agent that restarts resumes where it was and applies nothing twice.
const stateFile = "state.json"

// loadStatus reads the last status written by saveStatus; a missing file
// is a fresh agent (generation 0).
func loadStatus(dir *statedir.Dir) (Status, error) {
	data, err := dir.Read(stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{Phase: Pending}, nil
	}
	if err != nil {
		return Status{}, err
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, fmt.Errorf("read agent state %s: %w (move the file away to start afresh: the reconciler sends the desired state again)", filepath.Join(dir.Path(), stateFile), err)
	}
	return s, nil
}

// chainFile is the CA chain of the installed certificate, kept to verify
// the datastore after a restart the agent did not make.
const chainFile = "ca-chain.pem"

func saveChain(dir *statedir.Dir, chain []byte) error { return dir.Write(chainFile, chain) }

func loadChain(dir *statedir.Dir) ([]byte, error) { return dir.Read(chainFile) }

// saveStatus writes s atomically, 0600.
func saveStatus(dir *statedir.Dir, s Status) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	return dir.Write(stateFile, data)
}
