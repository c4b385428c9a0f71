package local

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"testing"
)

// FuzzParseWrapped checks that the wrapped-key decoder never panics and
// accepts only the canonical form: what it accepts, written out again, is
// what it was given.
func FuzzParseWrapped(f *testing.F) {
	r := &keyring{}
	for range 12 {
		if err := r.add(); err != nil {
			f.Fatal(err)
		}
	}
	key := bytes.Repeat([]byte{7}, keySize)
	valid := wrap(r, 1, "orders-db", key)
	f.Add(valid)
	f.Add(wrap(r, 12, "payments-db", key))
	for _, seed := range []string{
		"", "local:", "local:v", "local:v1", "local:v1:", "local:v0:", "local:v-1:", "local:v+1:", "local:v01:",
		"local:v99999999999999999999:", "local:v1::", "vault:v1:abc", "local:v1:" + string(bytes.Repeat([]byte{'A'}, 80)),
		"local:v1:" + string(bytes.Repeat([]byte{'A'}, 79)) + "=", "local:v1:" + string(valid[9:50]) + "\n" + string(valid[51:]),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, ct, err := parseWrapped(in)
		if err != nil {
			return
		}
		if v < 1 || v > maxVersion || len(ct) != wrappedLen {
			t.Fatalf("accepted version %d with %d bytes of ciphertext", v, len(ct))
		}
		canonical := wrappedPrefix + strconv.Itoa(v) + ":" + base64.RawURLEncoding.EncodeToString(ct)
		if canonical != string(in) {
			t.Fatalf("accepted %q, which is not the canonical %q", in, canonical)
		}
	})
}
