package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"

	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/agent/statedir"
	"github.com/reconciler-dev/reconciler/vault"
)

// Files in the agent's state directory.
const (
	keysFile     = "rpc-keys.json"
	countersFile = "rpc-counters.json"
)

// keyFile is the agent's keyring on disk: the version that seals, at
// most one other (a rotation in flight), and the highest retired one,
// which never comes back.
type keyFile struct {
	Current uint32            `json:"current"`
	Retired uint32            `json:"retired,omitempty"`
	Keys    map[uint32][]byte `json:"keys"`
}

func (f keyFile) with(version uint32, key []byte) keyFile {
	out := keyFile{Current: version, Retired: f.Retired, Keys: maps.Clone(f.Keys)}
	if out.Keys == nil {
		out.Keys = map[uint32][]byte{}
	}
	out.Keys[version] = key
	return out
}

func (f keyFile) without(keep uint32) keyFile {
	out := keyFile{Current: keep, Retired: f.Retired, Keys: map[uint32][]byte{keep: f.Keys[keep]}}
	for v := range f.Keys {
		if v != keep {
			out.Retired = max(out.Retired, v)
		}
	}
	return out
}

// loadKeyring rebuilds the agent's keyring from its state directory; no
// file is an agent with no key.
func loadKeyring(dir *statedir.Dir, instance string) (*rpc.Keyring, keyFile, error) {
	ring := rpc.NewKeyring(instance)
	data, err := dir.Read(keysFile)
	if errors.Is(err, fs.ErrNotExist) {
		return ring, keyFile{}, nil
	}
	if err != nil {
		return nil, keyFile{}, err
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		// The decoder's message may quote the file: say only that it is damaged.
		return nil, keyFile{}, fmt.Errorf("read RPC keys in %s: not valid JSON: re-enroll the agent with reconciler agent bootstrap", dir.Path())
	}
	if f.Keys[f.Current] == nil || len(f.Keys) > 2 {
		return nil, keyFile{}, fmt.Errorf("read RPC keys in %s: no current key or more than two: re-enroll the agent with reconciler agent bootstrap", dir.Path())
	}
	if err := ring.Add(f.Current, vault.Secret(f.Keys[f.Current])); err != nil {
		return nil, keyFile{}, fmt.Errorf("read RPC keys in %s: %w", dir.Path(), err)
	}
	for v, k := range f.Keys {
		if v == f.Current {
			continue
		}
		if err := ring.Add(v, vault.Secret(k)); err != nil {
			return nil, keyFile{}, fmt.Errorf("read RPC keys in %s: %w", dir.Path(), err)
		}
	}
	if f.Retired > 0 {
		ring.Retire(f.Retired)
	}
	return ring, f, nil
}

func saveKeyring(dir *statedir.Dir, f keyFile) error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("write RPC keys: %w", err)
	}
	return dir.Write(keysFile, data)
}

type counters struct {
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
}

func loadCounters(dir *statedir.Dir) (sent, received uint64, err error) {
	data, err := dir.Read(countersFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var c counters
	if err := json.Unmarshal(data, &c); err != nil {
		// Losing the counters costs little: the send counter restarts
		// above the clock, and the replay window opens at the next reply.
		return 0, 0, nil
	}
	return c.Sent, c.Received, nil
}

func saveCounters(dir *statedir.Dir, sent, received uint64) error {
	data, _ := json.Marshal(counters{Sent: sent, Received: received})
	return dir.Write(countersFile, data)
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
