package inline_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/inline"
	"github.com/reconciler-dev/reconciler/vault/inline/inlinetest"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

func TestContract(t *testing.T) {
	dir := t.TempDir()
	ca := inlinetest.NewCA("orders")
	req := vaulttest.DefaultRequest()
	if err := inlinetest.Write(dir, req.Instance, ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).Files()); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "fleet-ca.crt")
	if err := os.WriteFile(bundle, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	iss, err := inline.New(dir, inline.WithCABundle(bundle))
	if err != nil {
		t.Fatal(err)
	}
	vaulttest.TestIssuer(t, iss, vaulttest.IssuerOptions{Static: true, NoRSA: true, CanRevoke: false})
}

// at truncates to the second, as certificates store their validity.
func at(d time.Duration) time.Time { return time.Now().Add(d).Truncate(time.Second) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func TestIssue(t *testing.T) {
	ca := inlinetest.NewCA("orders")
	other := inlinetest.NewCA("other")
	req := vaulttest.DefaultRequest() // orders-db, hosts orders-db.db.internal and 10.0.4.17
	good := func() *inlinetest.Leaf { return ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil) }
	withTimes := func(notBefore, notAfter time.Time) *inlinetest.Leaf {
		tmpl := inlinetest.Template(req.Instance, req.Hosts...)
		tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
		return ca.Sign(tmpl, nil)
	}
	expired, future, soon := at(-time.Hour), at(time.Hour), at(2*time.Hour)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		instance string // default req.Instance
		opts     []inline.Option
		// files returns what to write for the instance; nil writes nothing.
		files func() *inlinetest.Files
		// tweak changes the written files, in the instance's directory.
		tweak func(t *testing.T, dir string)
		// want is the error, with {dir} standing for the instance's
		// directory; empty means success.
		want string
	}{
		{
			name:  "leaf and intermediate in tls.crt, root in ca.crt",
			files: files(good()),
		},
		{
			name: "leaf alone in tls.crt, whole chain in ca.crt",
			files: func() *inlinetest.Files {
				l := good()
				return &inlinetest.Files{Cert: inlinetest.EncodeCerts(l.Cert), Key: l.KeyPEM(), CA: ca.ChainPEM()}
			},
		},
		{
			name:  "a wildcard SAN covers a host one label below it",
			files: files(ca.Sign(inlinetest.Template(req.Instance, "*.db.internal", "10.0.4.17"), nil)),
		},
		{
			name:  "PKCS #1 RSA key",
			files: withKey(ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), rsaKey), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)),
		},
		{
			name: "SEC 1 EC key after EC PARAMETERS, as openssl ecparam writes it",
			files: func() *inlinetest.Files {
				l := good()
				der, err := x509.MarshalECPrivateKey(l.Key.(*ecdsa.PrivateKey))
				if err != nil {
					panic(err)
				}
				params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
				f := l.Files()
				f.Key = append(params, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
				return &f
			},
		},
		{
			name:  "a symbolic link inside the directory is followed, as in Kubernetes secret volumes",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				mustRename(t, filepath.Join(dir, "tls.key"), filepath.Join(dir, "..data-tls.key"))
				mustSymlink(t, "..data-tls.key", filepath.Join(dir, "tls.key"))
			},
		},
		{
			name:  "a certificate expiring within a lowered window is accepted",
			opts:  []inline.Option{inline.WithMinRemaining(time.Hour)},
			files: files(withTimes(at(-time.Hour), soon)),
		},

		{
			name: "key does not match the certificate",
			files: func() *inlinetest.Files {
				f := good().Files()
				f.Key = good().KeyPEM()
				return &f
			},
			want: "orders-db/tls.key does not match the certificate in orders-db/tls.crt; put the private key that certificate was issued for there, or reissue the certificate for this key",
		},
		{
			name: "certificate from another CA",
			files: func() *inlinetest.Files {
				f := other.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).Files()
				f.CA = ca.RootPEM()
				return &f
			},
			want: `orders-db/tls.crt is issued by "CN=other Intermediate CA", which does not chain to the root "CN=orders Root CA" in orders-db/ca.crt; reissue it from that root's CA, or put the chain of the CA that issued it in orders-db/ca.crt`,
		},
		{
			name:  "DNS SAN missing",
			files: files(ca.Sign(inlinetest.Template(req.Instance, "10.0.4.17"), nil)),
			want:  "orders-db/tls.crt does not cover host orders-db.db.internal (SANs: 10.0.4.17); reissue it with that SAN",
		},
		{
			name:  "IP SAN missing",
			files: files(ca.Sign(inlinetest.Template(req.Instance, "orders-db.db.internal", "10.0.4.18"), nil)),
			want:  "orders-db/tls.crt does not cover host 10.0.4.17 (SANs: orders-db.db.internal, 10.0.4.18); reissue it with that SAN",
		},
		{
			name:  "a wildcard covers one label only",
			files: files(ca.Sign(inlinetest.Template(req.Instance, "*.internal"), nil)),
			want:  "orders-db/tls.crt does not cover hosts orders-db.db.internal, 10.0.4.17 (SANs: *.internal); reissue it with those SANs",
		},
		{
			name:  "no SANs at all",
			files: files(ca.Sign(inlinetest.Template(req.Instance), nil)),
			want:  "orders-db/tls.crt does not cover hosts orders-db.db.internal, 10.0.4.17 (it has no DNS or IP SANs); reissue it with those SANs",
		},
		{
			name:  "expired",
			files: files(withTimes(at(-48*time.Hour), expired)),
			want:  "orders-db/tls.crt expired at " + stamp(expired) + "; renew it at your CA and replace the file",
		},
		{
			name:  "not yet valid",
			files: files(withTimes(future, at(90*24*time.Hour))),
			want:  "orders-db/tls.crt is not valid until " + stamp(future) + "; reissue it valid from now, or check this host's clock",
		},
		{
			name:  "expiring within the default 24h window",
			files: files(withTimes(at(-time.Hour), soon)),
			want:  "orders-db/tls.crt expires at " + stamp(soon) + ", in less than the 24h0m0s of validity it must have left; renew it at your CA and replace the file",
		},
		{
			name: "certificate for TLS clients only",
			files: func() *inlinetest.Files {
				tmpl := inlinetest.Template(req.Instance, req.Hosts...)
				tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
				return files(ca.Sign(tmpl, nil))()
			},
			want: "orders-db/tls.crt is not valid for TLS servers: its extended key usage (or an intermediate's) lacks serverAuth; reissue it with extended key usage serverAuth",
		},
		{
			name:  "oversize file",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				appendTo(t, filepath.Join(dir, "tls.crt"), strings.Repeat("x", inline.MaxFileSize))
			},
			want: "orders-db/tls.crt is {size} bytes, over the 65536-byte limit; it should hold a few PEM blocks: check it is the right file",
		},
		{
			name:  "world-readable key",
			files: files(good()),
			tweak: func(t *testing.T, dir string) { mustChmod(t, filepath.Join(dir, "tls.key"), 0o644) },
			want:  "orders-db/tls.key is open to group or others (mode 0644); restrict it to its owner: chmod 600 {dir}/tls.key",
		},
		{
			name:  "group-readable key",
			files: files(good()),
			tweak: func(t *testing.T, dir string) { mustChmod(t, filepath.Join(dir, "tls.key"), 0o640) },
			want:  "orders-db/tls.key is open to group or others (mode 0640); restrict it to its owner: chmod 600 {dir}/tls.key",
		},
		{
			name:  "missing ca.crt",
			files: files(good()),
			tweak: func(t *testing.T, dir string) { mustRemove(t, filepath.Join(dir, "ca.crt")) },
			want:  "orders-db/ca.crt does not exist; put the CA chain that issued the certificate there, PEM, root last",
		},
		{
			name:  "missing tls.key",
			files: files(good()),
			tweak: func(t *testing.T, dir string) { mustRemove(t, filepath.Join(dir, "tls.key")) },
			want:  "orders-db/tls.key does not exist; put the certificate's private key there, PEM, readable by its owner only (chmod 600)",
		},
		{
			name: "missing instance directory",
			want: "orders-db/ does not exist; create {dir} holding tls.crt, tls.key and ca.crt",
		},
		{
			name:  "a symbolic link out of the directory is refused",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				outside := filepath.Join(t.TempDir(), "key")
				mustRename(t, filepath.Join(dir, "tls.key"), outside)
				mustSymlink(t, outside, filepath.Join(dir, "tls.key"))
			},
			want: "orders-db/tls.key cannot be read (statat orders-db/tls.key: path escapes from parent); let the reconciler's user read it, and keep it inside the certificate directory",
		},
		{
			name:     "path traversal in the instance name",
			instance: "../orders-db",
			want:     `denied by the key provider: instance name "../orders-db" cannot name a directory: it must be non-empty and hold no "/", "\" or ".."; rename the instance`,
		},
		{
			name:     "a slash in the instance name",
			instance: "team/orders-db",
			want:     `denied by the key provider: instance name "team/orders-db" cannot name a directory: it must be non-empty and hold no "/", "\" or ".."; rename the instance`,
		},
		{
			name:     "an instance named ..",
			instance: "..",
			want:     `denied by the key provider: instance name ".." cannot name a directory: it must be non-empty and hold no "/", "\" or ".."; rename the instance`,
		},
		{
			name:  "garbage instead of a certificate",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "tls.crt"), "not a certificate\n", 0o644)
			},
			want: "orders-db/tls.crt holds no PEM certificate; put the instance's certificate there, PEM, the leaf first, then any intermediates",
		},
		{
			name:  "truncated certificate chain",
			files: files(good()),
			tweak: func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "tls.crt")) },
			want:  "orders-db/tls.crt holds a PEM block that does not decode: it is truncated or corrupted; replace it with a complete copy",
		},
		{
			name:  "a certificate block that is not DER",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "tls.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})), 0o644)
			},
			want: "orders-db/tls.crt holds a certificate that does not parse (parse certificate chain: x509: malformed certificate); replace it with the PEM certificates your CA issued",
		},
		{
			name:  "garbage instead of a key",
			files: files(good()),
			tweak: func(t *testing.T, dir string) { mustWrite(t, filepath.Join(dir, "tls.key"), "not a key\n", 0o600) },
			want:  "orders-db/tls.key holds no PEM private key; put the certificate's private key there, PEM: PKCS #8, PKCS #1 or SEC 1, unencrypted",
		},
		{
			name:  "a certificate where the key should be",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				copyFile(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), 0o600)
			},
			want: "orders-db/tls.key holds no private key, only \"CERTIFICATE\" blocks; put the certificate's private key there, PEM: PKCS #8, PKCS #1 or SEC 1, unencrypted",
		},
		{
			name:  "a key block that is not DER",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "tls.key"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("garbage")})), 0o600)
			},
			want: `orders-db/tls.key holds a "EC PRIVATE KEY" block that does not parse as SEC 1; put the certificate's private key there, PEM: PKCS #8, PKCS #1 or SEC 1, unencrypted`,
		},
		{
			name:  "an encrypted key",
			files: files(good()),
			tweak: func(t *testing.T, dir string) {
				mustWrite(t, filepath.Join(dir, "tls.key"), string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}})), 0o600)
			},
			want: "orders-db/tls.key holds an encrypted private key, and the reconciler has no passphrase; store it decrypted (openssl pkey -in tls.key -out tls.key.new), readable by its owner only",
		},
		{
			name: "two keys",
			files: func() *inlinetest.Files {
				l := good()
				f := l.Files()
				f.Key = append(f.Key, good().KeyPEM()...)
				return &f
			},
			want: "orders-db/tls.key holds 2 private keys; keep only the certificate's",
		},
		{
			name: "ca.crt lists the root first",
			files: func() *inlinetest.Files {
				l := good()
				return &inlinetest.Files{Cert: inlinetest.EncodeCerts(l.Cert), Key: l.KeyPEM(), CA: inlinetest.EncodeCerts(ca.Root, ca.Intermediate)}
			},
			want: `orders-db/ca.crt lists the root "CN=orders Root CA" before "CN=orders Intermediate CA"; put the root last, after the intermediates`,
		},
		{
			name: "ca.crt without its root",
			files: func() *inlinetest.Files {
				l := good()
				return &inlinetest.Files{Cert: inlinetest.EncodeCerts(l.Cert), Key: l.KeyPEM(), CA: inlinetest.EncodeCerts(ca.Intermediate)}
			},
			want: `orders-db/ca.crt ends with "CN=orders Intermediate CA", which is not a self-signed root CA; append the root CA certificate`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			instance := tt.instance
			if instance == "" {
				instance = req.Instance
			}
			var key []byte
			if tt.files != nil {
				f := tt.files()
				key = f.Key
				if err := inlinetest.Write(dir, instance, *f); err != nil {
					t.Fatal(err)
				}
			}
			idir := filepath.Join(dir, instance)
			if tt.tweak != nil {
				tt.tweak(t, idir)
			}
			iss, err := inline.New(dir, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			r := req
			r.Instance = instance
			c, err := iss.Issue(context.Background(), r)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				if c.Serial == "" || len(c.Key) == 0 {
					t.Errorf("Issue returned %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatal("Issue succeeded")
			}
			want := strings.ReplaceAll(tt.want, "{dir}", idir)
			if info, statErr := os.Stat(filepath.Join(idir, "tls.crt")); statErr == nil {
				want = strings.ReplaceAll(want, "{size}", strconv.FormatInt(info.Size(), 10))
			}
			if diff := cmp.Diff(want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, vault.ErrDenied) {
				t.Errorf("error %v does not wrap vault.ErrDenied", err)
			}
			noKeyIn(t, key, err.Error())
		})
	}
}

func TestIssuePicksUpReplacedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := inlinetest.NewCA("orders")
	req := vaulttest.DefaultRequest()
	iss, err := inline.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var serials []string
	for range 2 {
		if err := inlinetest.Write(dir, req.Instance, ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).Files()); err != nil {
			t.Fatal(err)
		}
		c, err := iss.Issue(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, c.Serial)
	}
	if serials[0] == serials[1] {
		t.Errorf("the second Issue returned the replaced certificate %s", serials[0])
	}
}

func TestIssueReturnsTheVerifiedChainAndAPKCS8Key(t *testing.T) {
	dir := t.TempDir()
	ca := inlinetest.NewCA("orders")
	req := vaulttest.DefaultRequest()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	l := ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), rsaKey)
	f := l.Files()
	f.Key = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if err := inlinetest.Write(dir, req.Instance, f); err != nil {
		t.Fatal(err)
	}
	iss, err := inline.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(inlinetest.EncodeCerts(l.Cert)), string(c.CertPEM)); diff != "" {
		t.Errorf("CertPEM (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(string(ca.ChainPEM()), string(c.ChainPEM)); diff != "" {
		t.Errorf("ChainPEM (-want +got):\n%s", diff)
	}
	block, _ := pem.Decode(c.Key.Bytes())
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("Key is not a PKCS #8 PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !rsaKey.Equal(k) {
		t.Error("Key is not the key of tls.key")
	}
}

func TestCAChain(t *testing.T) {
	ca := inlinetest.NewCA("orders")
	tests := []struct {
		name   string
		bundle []byte // nil: no WithCABundle
		want   string // the error, from New or CAChain; {file} stands for the bundle
	}{
		{name: "the bundle, text around PEM blocks dropped", bundle: append([]byte("# fleet CA\n"), ca.ChainPEM()...)},
		{name: "no bundle configured", want: "read CA chain: denied by the key provider: the inline provider has no fleet CA bundle (each instance's ca.crt is that instance's own); configure one with WithCABundle"},
		{name: "a bundle without its root", bundle: inlinetest.EncodeCerts(ca.Intermediate),
			want: `configure inline issuer: {file} ends with "CN=orders Intermediate CA", which is not a self-signed root CA; append the root CA certificate`},
		{name: "an empty bundle", bundle: []byte{},
			want: "configure inline issuer: {file} holds no PEM certificate; put the CA chain that issued the certificate there, PEM, root last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []inline.Option
			file := filepath.Join(t.TempDir(), "fleet-ca.crt")
			if tt.bundle != nil {
				mustWrite(t, file, string(tt.bundle), 0o644)
				opts = append(opts, inline.WithCABundle(file))
			}
			iss, err := inline.New(t.TempDir(), opts...)
			var got []byte
			if err == nil {
				got, err = iss.CAChain(context.Background())
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(ca.ChainPEM()), string(got)); diff != "" {
					t.Errorf("CAChain (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(strings.ReplaceAll(tt.want, "{file}", file), err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, vault.ErrDenied) {
				t.Errorf("error %v does not wrap vault.ErrDenied", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	mustWrite(t, notDir, "", 0o644)
	tests := []struct {
		name string
		dir  string
		opts []inline.Option
		want string
	}{
		{name: "missing directory", dir: filepath.Join(dir, "nope"), want: "open certificate directory: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "a file, not a directory", dir: notDir, want: "open certificate directory " + notDir + ": not a directory"},
		{name: "negative window", dir: dir, opts: []inline.Option{inline.WithMinRemaining(-time.Hour)}, want: "configure inline issuer: minimum remaining validity -1h0m0s is negative"},
		{name: "missing CA bundle", dir: dir, opts: []inline.Option{inline.WithCABundle(filepath.Join(dir, "ca.pem"))},
			want: "configure inline issuer: " + filepath.Join(dir, "ca.pem") + " does not exist; put the fleet's CA bundle there, PEM, root last, or fix the CA bundle's path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inline.New(tt.dir, tt.opts...)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRevokeIsUnsupported(t *testing.T) {
	iss, err := inline.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	err = iss.Revoke(context.Background(), "01:02")
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Revoke = %v, want errors.ErrUnsupported", err)
	}
	if diff := cmp.Diff("revoke certificate 01:02: unsupported operation: the inline provider hands out certificates it did not issue; revoke it at your CA", err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

// noKeyIn fails if out holds any line of the key's PEM body.
func noKeyIn(t *testing.T, keyPEM []byte, out string) {
	t.Helper()
	if len(keyPEM) == 0 {
		return
	}
	vaulttest.NoSecretIn(t, vault.Secret(keyPEM), []string{out})
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(out, line) {
			t.Errorf("the private key leaked into %q", out)
		}
	}
}

func files(l *inlinetest.Leaf) func() *inlinetest.Files {
	return func() *inlinetest.Files { f := l.Files(); return &f }
}

func withKey(l *inlinetest.Leaf, blockType string, der []byte) func() *inlinetest.Files {
	return func() *inlinetest.Files {
		f := l.Files()
		f.Key = pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
		return &f
	}
}

func truncate(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, file, string(data[:len(data)-40]), 0o644)
}

func appendTo(t *testing.T, file, s string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, to, string(data), mode)
}

func mustWrite(t *testing.T, file, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(file, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	mustChmod(t, file, mode)
}

func mustChmod(t *testing.T, file string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, file string) {
	t.Helper()
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
