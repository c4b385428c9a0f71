package local

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A sealed file is one PEM block whose headers say what it holds and under
// which KEK, and whose body is AES-256-GCM (random nonce prepended) under a
// key derived from the KEK for that purpose. The headers are also the
// associated data, so a file cannot be passed off as another kind of file,
// format version or KEK.
const (
	sealedBlockType = "RECONCILER LOCAL SEALED"
	sealFormat      = "1"
)

// Purposes of sealed files; each has its own key derived from the KEK.
const (
	purposeCAKey   = "ca-key"
	purposeKeyring = "keyring"
)

// errWrongKEK and errDamaged are what open finds; the caller names the
// file and the state directory.
var (
	errWrongKEK = errors.New("sealed under another KEK")
	errDamaged  = errors.New("authentication failed")
)

func sealAEAD(k KEK, purpose string) cipher.AEAD {
	key := k.derive(purpose)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("new AES cipher: %v", err)) // the key is always 32 bytes
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic(fmt.Sprintf("new GCM: %v", err))
	}
	return aead
}

func sealAD(purpose, kekID string) []byte {
	return []byte("reconciler local sealed file\x00format " + sealFormat + "\x00purpose " + purpose + "\x00kek " + kekID)
}

// seal encrypts plaintext for purpose and returns the file content.
func seal(k KEK, purpose string, plaintext []byte) []byte {
	id := k.id()
	ct := sealAEAD(k, purpose).Seal(nil, nil, plaintext, sealAD(purpose, id))
	return pem.EncodeToMemory(&pem.Block{
		Type:    sealedBlockType,
		Headers: map[string]string{"Purpose": purpose, "Format": sealFormat, "KEK-ID": id},
		Bytes:   ct,
	})
}

// open decrypts a sealed file's content. It returns errWrongKEK when the
// file names another KEK, errDamaged when it does not authenticate, and a
// descriptive error when it is not a sealed file of this purpose at all.
func open(k KEK, purpose string, data []byte) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != sealedBlockType {
		return nil, errors.New("not a sealed file")
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after the sealed block")
	}
	if f := block.Headers["Format"]; f != sealFormat {
		return nil, fmt.Errorf("sealed file format %q, want %q", f, sealFormat)
	}
	if p := block.Headers["Purpose"]; p != purpose {
		return nil, fmt.Errorf("the file holds a %q, want a %q", p, purpose)
	}
	id := k.id()
	if block.Headers["KEK-ID"] != id {
		return nil, errWrongKEK
	}
	pt, err := sealAEAD(k, purpose).Open(nil, nil, block.Bytes, sealAD(purpose, id))
	if err != nil {
		return nil, errDamaged
	}
	return pt, nil
}

// writeFileAtomic replaces name with data, readable by the owner only: a
// temporary file in the same directory is written, synced and renamed over
// name, and the directory synced, so a crash leaves the old or the new
// content, never a mix.
func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}
