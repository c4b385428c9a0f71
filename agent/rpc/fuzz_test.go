package rpc

import (
	"bytes"
	"errors"
	"testing"

	"github.com/reconciler-dev/reconciler/vault"
)

// FuzzOpen feeds arbitrary bytes to the envelope parser and to Open on a
// keyed and on a keyless, plaintext-allowing receiver. Neither may panic;
// a parsed header re-encodes to the bytes it came from; every refusal
// carries exactly one reason; only a sealed message opens on the keyed
// receiver and only a plaintext one on the keyless receiver.
func FuzzOpen(f *testing.F) {
	clk := newClock()
	rec, _ := pair(f, "orders-db", clk)
	plain := session(f, SideReconciler, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
	for _, m := range [][]byte{
		seal(f, rec, []byte(`{"generation":7}`)),
		seal(f, rec, nil),
		seal(f, plain, []byte(`{"generation":7}`)),
		seal(f, plain, nil),
	} {
		f.Add(m)
		for _, n := range []int{0, 1, 3, 4, 5, 9, 17, 25, 26, fixedHeaderSize + 5, len(m) - tagSize, len(m) - 1} {
			if n >= 0 && n < len(m) {
				f.Add(bytes.Clone(m[:n]))
			}
		}
	}
	f.Add([]byte("RCS\x01"))
	f.Add([]byte("RCP\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02db"))
	f.Add(bytes.Repeat([]byte{0xff}, 80))

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error %v does not wrap ErrMalformed", err)
			}
		} else {
			re := appendHeader(nil, e.sealed, e.header)
			if !bytes.HasPrefix(data, re) {
				t.Fatalf("header %+v re-encodes to %x, not a prefix of %x", e.header, re, data)
			}
			if e.sealed && (len(e.nonce) != nonceSize || len(e.body) < tagSize) {
				t.Fatalf("sealed message with a %d-byte nonce and a %d-byte body", len(e.nonce), len(e.body))
			}
		}

		keyed := session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now))
		keyless := session(t, SideAgent, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
		for _, to := range []*Session{keyed, keyless} {
			h, payload, err := to.Open(data)
			if err != nil {
				if r := Reason(err); r == "" || r == ResultOK {
					t.Fatalf("refusal without a reason: %v", err)
				}
				if h != (Header{}) || payload != nil {
					t.Fatalf("refusal returned a header or payload: %v", err)
				}
				continue
			}
			if h.Sealed() != (to == keyed) {
				t.Fatalf("keyed=%v receiver accepted a message with key version %d", to == keyed, h.KeyVersion)
			}
		}
	})
}

// FuzzOpenKey feeds arbitrary bytes to the key-delivery decoder: it never
// panics, and only the genuine delivery opens.
func FuzzOpenKey(f *testing.F) {
	token := vault.Secret(bytes.Repeat([]byte{7}, TokenSize))
	req, priv, err := NewKeyRequest("orders-db", token)
	if err != nil {
		f.Fatal(err)
	}
	pub, err := req.Verify("orders-db", token)
	if err != nil {
		f.Fatal(err)
	}
	good, err := SealKeyFor(pub, "orders-db", token, 1, testKey(0x5a))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, n := range []int{0, 3, 8, 40, 72, 73, deliveryFixed + 9, len(good) - 1} {
		f.Add(bytes.Clone(good[:n]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		version, key, err := OpenKey(priv, "orders-db", token, data)
		if err != nil {
			if key != nil || version != 0 {
				t.Fatal("a refused delivery returned a key")
			}
			return
		}
		if !bytes.Equal(data, good) {
			t.Fatalf("a delivery other than the genuine one opened")
		}
	})
}
