// Package installertest holds what the installers' tests share: a
// throwaway certificate bundle, golden files with an -update flag, the
// Documented-option check, and probes for secrets in errors and logs.
package installertest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/vault"
)

// Update rewrites golden files instead of comparing with them.
var Update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// NewBundle issues a throwaway CA and server certificate. The key is the
// canary: no log line or error may ever contain a line of it.
func NewBundle(t testing.TB, minVersion string, require bool) installers.Bundle {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	leaf := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "db.test"}, DNSNames: []string{"db.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return installers.Bundle{
		CertPEM:                pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ChainPEM:               pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Key:                    vault.Secret(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		Serial:                 serial.String(),
		MinVersion:             minVersion,
		RequireSecureTransport: require,
	}
}

// AssertNoKey fails if any base64 line of the bundle's key is in text.
func AssertNoKey(t *testing.T, what, text string, b installers.Bundle) {
	t.Helper()
	for _, line := range strings.Split(string(b.Key), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
			t.Fatalf("%s contains key material", what)
		}
	}
}

func CurrentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Skip("no current user")
	}
	return u.Username
}

// CopyFile puts testdata/name into dir under as, returning its path.
func CopyFile(t *testing.T, name, dir, as string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, as)
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// Script writes an executable shell script and returns its argv.
func Script(t *testing.T, body string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cmd.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{path}
}

// Golden compares got with testdata/golden/name, or rewrites it with -update.
func Golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *Update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

// Documented reads testdata/documented-options.txt: option name to its
// Documented values (nil when any value is documented).
func Documented(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, values, _ := strings.Cut(line, "=")
		var vs []string
		for _, v := range strings.Split(values, "|") {
			if v = strings.TrimSpace(v); v != "" {
				vs = append(vs, v)
			}
		}
		opts[strings.TrimSpace(key)] = vs
	}
	return opts
}

// flatten lists the scalar leaves under m as dotted names with their
// values; a sequence or a comma-separated scalar gives one value per item.
func flatten(prefix string, v any, out map[string][]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			flatten(prefix+"."+k, x, out)
		}
	case []any:
		for _, x := range v {
			out[prefix] = append(out[prefix], fmt.Sprint(x))
		}
	default:
		for _, item := range strings.Split(fmt.Sprint(v), ",") {
			out[prefix] = append(out[prefix], strings.TrimSpace(item))
		}
	}
}

// CheckDocumented asserts that every option under root in the YAML file
// and each of its values is in the documented list.
func CheckDocumented(t *testing.T, file []byte, root string, docs map[string][]string) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(file, &doc); err != nil {
		t.Fatalf("the configuration is not YAML: %v", err)
	}
	var node any = doc
	for _, part := range strings.Split(root, ".") {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("%s is missing", root)
		}
		node = m[part]
	}
	got := map[string][]string{}
	flatten(root, node, got)
	names := make([]string, 0, len(got))
	for k := range got {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("nothing under %s", root)
	}
	for _, name := range names {
		allowed, ok := docs[name]
		if !ok {
			t.Errorf("option %s is not in the documented list", name)
			continue
		}
		for _, v := range got[name] {
			if allowed != nil && !slices.Contains(allowed, v) {
				t.Errorf("option %s = %q: not a documented value (%v)", name, v, allowed)
			}
		}
	}
}

// SameFile reports whether path is still the very file it was (an
// atomic rewrite replaces the inode).
func SameFile(t *testing.T, before os.FileInfo, path string) bool {
	t.Helper()
	after, err := os.Stat(path)
	return err == nil && os.SameFile(before, after)
}

func Stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func SlogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
