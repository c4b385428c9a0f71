package local_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconciler-dev/reconciler/vault/local"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

func TestLoadKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{0xa5}, 32)
	tests := []struct {
		name    string
		content *string // nil: no file
		mode    os.FileMode
		wantErr string // empty: loads raw
	}{
		{name: "base64", content: ptr(base64.StdEncoding.EncodeToString(raw) + "\n"), mode: 0o600},
		{name: "base64 without padding", content: ptr(base64.RawStdEncoding.EncodeToString(raw)), mode: 0o600},
		{name: "hex with whitespace around", content: ptr("  " + hex.EncodeToString(raw) + "\r\n\n"), mode: 0o400},
		{name: "a missing file", wantErr: "does not exist; create one with: head -c 32 /dev/urandom | base64 > kek; chmod 600 kek"},
		{name: "an empty file", content: ptr(""), mode: 0o600, wantErr: "the KEK is empty"},
		{name: "only whitespace", content: ptr(" \n"), mode: 0o600, wantErr: "the KEK is empty"},
		{name: "a short key", content: ptr(base64.StdEncoding.EncodeToString(raw[:16])), mode: 0o600, wantErr: "the KEK decodes to 16 bytes, want 32"},
		{name: "a long key", content: ptr(hex.EncodeToString(append(raw, raw...))), mode: 0o600, wantErr: "the KEK decodes to 64 bytes, want 32"},
		{name: "not base64 or hex", content: ptr("correct horse battery staple"), mode: 0o600, wantErr: "neither base64 nor hex"},
		{name: "world-readable", content: ptr(base64.StdEncoding.EncodeToString(raw)), mode: 0o644, wantErr: "is accessible by group or others (mode 0644); restrict it with: chmod 600 FILE"},
		{name: "group-readable", content: ptr(base64.StdEncoding.EncodeToString(raw)), mode: 0o640, wantErr: "chmod 600 FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "kek")
			if tt.content != nil {
				if err := os.WriteFile(file, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(file, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			k, err := local.LoadKEK(file)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadKEK: %v", err)
				}
				if !bytes.Equal(local.KEKBytes(k), raw) {
					t.Error("LoadKEK read another key")
				}
				return
			}
			if err == nil {
				t.Fatal("LoadKEK succeeded")
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name the file", err)
			}
			if want := strings.ReplaceAll(tt.wantErr, "FILE", file); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if tt.content != nil && len(*tt.content) > 8 && strings.Contains(err.Error(), strings.TrimSpace(*tt.content)) {
				t.Errorf("error %q quotes the file's content", err)
			}
		})
	}
	t.Run("no file name", func(t *testing.T) {
		if _, err := local.LoadKEK(""); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
			t.Errorf("LoadKEK(\"\") = %v, want an error saying how to make a KEK", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestKEKFromEnv(t *testing.T) {
	raw := bytes.Repeat([]byte{0x5a}, 32)
	tests := []struct {
		name    string
		env     map[string]string
		arg     string
		wantErr string
	}{
		{name: "the default variable", env: map[string]string{"RECONCILER_KEK": base64.StdEncoding.EncodeToString(raw)}},
		{name: "a named variable in hex", env: map[string]string{"MY_KEK": hex.EncodeToString(raw)}, arg: "MY_KEK"},
		{name: "unset", wantErr: "environment variable RECONCILER_KEK is not set; create one with: head -c 32 /dev/urandom | base64 > kek"},
		{name: "empty", env: map[string]string{"MY_KEK": ""}, arg: "MY_KEK", wantErr: "environment variable MY_KEK is not set"},
		{name: "short", env: map[string]string{"RECONCILER_KEK": hex.EncodeToString(raw[:31])}, wantErr: "environment variable RECONCILER_KEK: the KEK decodes to 31 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"RECONCILER_KEK", "MY_KEK"} {
				t.Setenv(name, "")
				os.Unsetenv(name)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			k, err := local.KEKFromEnv(tt.arg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("KEKFromEnv: %v", err)
				}
				if !bytes.Equal(local.KEKBytes(k), raw) {
					t.Error("KEKFromEnv read another key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("KEKFromEnv = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestNoKEKNoProvider(t *testing.T) {
	_, err := local.New(t.Context(), t.TempDir(), local.KEK{})
	if err == nil || !strings.Contains(err.Error(), "no KEK given; create one with: head -c 32 /dev/urandom | base64 > kek; chmod 600 kek") {
		t.Errorf("New without a KEK = %v, want an error saying how to make one", err)
	}
}

func TestWriteKEKFile(t *testing.T) {
	k := newKEK(t)
	file := filepath.Join(t.TempDir(), "kek")
	if err := local.WriteKEKFile(file, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("KEK file mode %04o, want 0600", got)
	}
	got, err := local.LoadKEK(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(local.KEKBytes(got), local.KEKBytes(k)) {
		t.Error("the KEK read back differs")
	}
	if err := local.WriteKEKFile(file, newKEK(t)); err == nil {
		t.Error("WriteKEKFile replaced an existing KEK")
	}
	if again, _ := local.LoadKEK(file); !bytes.Equal(local.KEKBytes(again), local.KEKBytes(k)) {
		t.Error("the refused write changed the KEK file")
	}
}

func TestKEKIsNeverPrinted(t *testing.T) {
	k := newKEK(t)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("kek", "kek", k)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("kek", "kek", k)
	js, err := json.Marshal(struct{ K local.KEK }{k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q %d", k, k, k, k, k, k, k, k), k.String(), logged.String(), string(js)}
	vaulttest.NoSecretIn(t, local.KEKBytes(k), outputs)
	b64 := base64.StdEncoding.EncodeToString(local.KEKBytes(k))
	for _, out := range outputs {
		if strings.Contains(out, b64) {
			t.Errorf("the KEK leaked in base64: %q", out)
		}
	}
	if got := fmt.Sprintf("%x", k); got != "[redacted]" {
		t.Errorf("%%x of a KEK = %q, want [redacted]", got)
	}
	if got := fmt.Sprint(local.KEK{}); got != "[no KEK]" {
		t.Errorf("the zero KEK prints %q, want [no KEK]", got)
	}
}

func TestGenerateKEKMakesNewKeys(t *testing.T) {
	a, b := newKEK(t), newKEK(t)
	if bytes.Equal(local.KEKBytes(a), local.KEKBytes(b)) {
		t.Error("GenerateKEK returned the same key twice")
	}
}
