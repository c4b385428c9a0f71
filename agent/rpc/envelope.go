package rpc

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"time"
)

// Wire constants; doc.go draws the layout.
const (
	// FormatVersion is the envelope format this package writes and reads.
	FormatVersion = 1
	// MaxPayload is the largest payload Seal accepts and Open returns.
	// Transports should refuse bodies above MaxMessage before reading them.
	MaxPayload = 4 << 20
	// MaxMessage is the largest envelope Open parses: MaxPayload plus the
	// largest header, nonce and tag.
	MaxMessage = MaxPayload + fixedHeaderSize + maxInstanceLen + nonceSize + tagSize
	// maxInstanceLen is the longest instance name (a DNS-1123 label, as
	// in the specs).
	maxInstanceLen = 63

	magicSize       = 3
	fixedHeaderSize = magicSize + 1 + 1 + 4 + 8 + 8 + 1 // magic, format, direction, key version, counter, time, name length
	nonceSize       = 12                                // AES-GCM's standard nonce, random
	tagSize         = 16
)

// newAEAD returns AES-256-GCM under key; doc.go says why this AEAD.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// The magics of the two forms differ in two bits of their third byte, so
// no single bit flip turns one into the other, and a receiver never has
// to guess which it holds.
var (
	magicSealed    = [magicSize]byte{'R', 'C', 'S'}
	magicPlaintext = [magicSize]byte{'R', 'C', 'P'}
)

// Direction is the way a message travels.
type Direction uint8

// Directions. Zero is invalid so a forgotten field cannot pass.
const (
	ToAgent      Direction = 1 // sealed by the reconciler, opened by the agent
	ToReconciler Direction = 2 // sealed by the agent, opened by the reconciler
)

// String returns the metric label: "to_agent" or "to_reconciler".
func (d Direction) String() string {
	switch d {
	case ToAgent:
		return "to_agent"
	case ToReconciler:
		return "to_reconciler"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

func (d Direction) valid() bool { return d == ToAgent || d == ToReconciler }

// Header is the clear part of a message. Every field is authenticated in
// a sealed message, and none of them in a plaintext one. Open returns it
// only for an accepted message; a header taken from refused input is not
// to be trusted.
type Header struct {
	Instance   string
	Direction  Direction
	KeyVersion uint32 // 0 for the plaintext form, never 0 when sealed
	Counter    uint64 // strictly increasing per direction, never 0
	Time       time.Time
}

// Sealed reports whether the message was sealed (not plaintext).
func (h Header) Sealed() bool { return h.KeyVersion != 0 }

// appendHeader appends h's wire form, without the nonce, to b.
func appendHeader(b []byte, sealed bool, h Header) []byte {
	if sealed {
		b = append(b, magicSealed[:]...)
	} else {
		b = append(b, magicPlaintext[:]...)
	}
	b = append(b, FormatVersion, byte(h.Direction))
	b = binary.BigEndian.AppendUint32(b, h.KeyVersion)
	b = binary.BigEndian.AppendUint64(b, h.Counter)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time.UnixNano()))
	b = append(b, byte(len(h.Instance)))
	return append(b, h.Instance...)
}

// envelope is a parsed message: the header, whether it is sealed, the
// associated data (every byte before the body), the nonce and the body
// (ciphertext and tag, or the plaintext payload). All slices alias the
// input.
type envelope struct {
	header Header
	sealed bool
	ad     []byte
	nonce  []byte
	body   []byte
}

// parse splits data into an envelope. It checks the structure only: the
// magic, format version, lengths, direction, the instance name's syntax
// and the key version's zero-ness against the form. Its errors wrap
// ErrMalformed and quote none of the input.
func parse(data []byte) (envelope, error) { return parseFor(data, "") }

// parseFor is parse for a receiver expecting instance: a header naming it
// shares that string instead of copying the name out of data, so that
// opening a message allocates no string. The checks are parse's.
func parseFor(data []byte, instance string) (envelope, error) {
	var e envelope
	if len(data) > MaxMessage {
		return e, fmt.Errorf("%d bytes, above the %d-byte limit: %w", len(data), MaxMessage, ErrMalformed)
	}
	if len(data) < fixedHeaderSize {
		return e, fmt.Errorf("%d bytes, shorter than a header: %w", len(data), ErrMalformed)
	}
	switch [magicSize]byte(data[:magicSize]) {
	case magicSealed:
		e.sealed = true
	case magicPlaintext:
	default:
		return e, fmt.Errorf("unknown magic: %w", ErrMalformed)
	}
	if data[3] != FormatVersion {
		return e, fmt.Errorf("format version %d, want %d: %w", data[3], FormatVersion, ErrMalformed)
	}
	h := &e.header
	h.Direction = Direction(data[4])
	if !h.Direction.valid() {
		return e, fmt.Errorf("unknown direction %d: %w", data[4], ErrMalformed)
	}
	h.KeyVersion = binary.BigEndian.Uint32(data[5:9])
	h.Counter = binary.BigEndian.Uint64(data[9:17])
	h.Time = time.Unix(0, int64(binary.BigEndian.Uint64(data[17:25]))).UTC()
	n := int(data[25])
	if e.sealed != (h.KeyVersion != 0) {
		return e, fmt.Errorf("key version %d in a %s message: %w", h.KeyVersion, form(e.sealed), ErrMalformed)
	}
	if h.Counter == 0 {
		return e, fmt.Errorf("counter 0: %w", ErrMalformed)
	}
	end := fixedHeaderSize + n
	if len(data) < end {
		return e, fmt.Errorf("truncated in the instance name: %w", ErrMalformed)
	}
	name := data[fixedHeaderSize:end]
	if !validInstance(name) {
		return e, fmt.Errorf("invalid instance name: %w", ErrMalformed)
	}
	if string(name) == instance {
		h.Instance = instance
	} else {
		h.Instance = string(name)
	}
	if !e.sealed {
		e.ad = data[:end]
		e.body = data[end:]
		if len(e.body) > MaxPayload {
			return e, fmt.Errorf("payload of %d bytes above the %d-byte limit: %w", len(e.body), MaxPayload, ErrMalformed)
		}
		return e, nil
	}
	if len(data) < end+nonceSize+tagSize {
		return e, fmt.Errorf("%d bytes, too short for a sealed message: %w", len(data), ErrMalformed)
	}
	e.nonce = data[end : end+nonceSize]
	e.ad = data[:end+nonceSize]
	e.body = data[end+nonceSize:]
	return e, nil
}

func form(sealed bool) string {
	if sealed {
		return "sealed"
	}
	return "plaintext"
}

// validInstance reports whether name is a DNS-1123 label, the syntax the
// specs allow for instance names. Checking it keeps garbage out of error
// strings and log lines.
func validInstance[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > maxInstanceLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return false
		}
	}
	return true
}
