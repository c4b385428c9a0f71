package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFile is the last applied state, kept in Config.StateDir so that an
// agent that restarts resumes where it was and applies nothing twice.
const stateFile = "state.json"

// loadStatus reads the last status written by saveStatus; a missing file
// is a fresh agent (generation 0).
func loadStatus(dir string) (Status, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Status{Phase: Pending}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("read agent state: %w", err)
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, fmt.Errorf("read agent state %s: %w (move the file away to start afresh: the reconciler sends the desired state again)", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

// chainFile is the CA chain of the installed certificate, kept to verify
// the datastore after a restart the agent did not make.
const chainFile = "ca-chain.pem"

func saveChain(dir string, chain []byte) error { return writeState(dir, chainFile, chain) }

func loadChain(dir string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, chainFile))
	if err != nil {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	return data, nil
}

// saveStatus writes s atomically (temporary file, fsync, rename), 0600.
func saveStatus(dir string, s Status) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	return writeState(dir, stateFile, data)
}

func writeState(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	return nil
}
