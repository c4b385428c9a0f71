package rekey

import (
	"bytes"
	"testing"
)

func TestMasterVersion(t *testing.T) {
	tests := []struct {
		wrapped string
		want    int
		ok      bool
	}{
		{"local:v3:AAAA", 3, true},
		{"vault:v12:AAAA", 12, true},
		{"vault:v0:AAAA", 0, false},
		{"vault:vx:AAAA", 0, false},
		{"local:v7", 0, false},
		{"other:v1:AAAA", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		v, ok := MasterVersion([]byte(tt.wrapped))
		if v != tt.want || ok != tt.ok {
			t.Errorf("MasterVersion(%q) = %d, %t; want %d, %t", tt.wrapped, v, ok, tt.want, tt.ok)
		}
	}
}

// FuzzMasterVersion checks that no wrapped key crashes the parser and
// that a version it reads is one the key names.
func FuzzMasterVersion(f *testing.F) {
	for _, seed := range []string{"local:v3:AAAA", "vault:v12:AAAA", "vault:v0:", "local:v", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, wrapped []byte) {
		v, ok := MasterVersion(wrapped)
		if !ok {
			return
		}
		if v < 1 || !(bytes.HasPrefix(wrapped, []byte("local:v")) || bytes.HasPrefix(wrapped, []byte("vault:v"))) {
			t.Fatalf("MasterVersion(%q) = %d, true", wrapped, v)
		}
	})
}
