package signature

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// testKey returns a fixed ed25519 public key made from seed, and its
// authorized_keys form without a comment.
func testKey(t testing.TB, seed byte) (ssh.PublicKey, string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// cmpSigners compares allowed_signers entries, keys by their wire form.
var cmpSigners = []cmp.Option{
	cmp.AllowUnexported(allowedSigner{}),
	cmp.Comparer(func(a, b ssh.PublicKey) bool {
		return a == nil && b == nil || a != nil && b != nil && bytes.Equal(a.Marshal(), b.Marshal())
	}),
}

func TestParseAllowedSigners(t *testing.T) {
	k1, line1 := testKey(t, 1)
	k2, line2 := testKey(t, 2)
	utc := func(y int, m time.Month, d, h, min, s int) time.Time {
		return time.Date(y, m, d, h, min, s, 0, time.UTC)
	}
	tests := []struct {
		name    string
		file    string // {k1} and {k2} expand to keys
		want    []allowedSigner
		wantErr string
	}{
		{
			name: "principal and key",
			file: "alice@example.com {k1}\n",
			want: []allowedSigner{{line: 1, principals: "alice@example.com", key: k1}},
		},
		{
			name: "comments, blank lines, CRLF and a key comment",
			file: "# team\r\n\r\n   \t\n  alice@example.com,bob@example.com {k1} alice's laptop\r\n#bob@example.com {k2}\n",
			want: []allowedSigner{{line: 4, principals: "alice@example.com,bob@example.com", key: k1}},
		},
		{
			name: "every option",
			file: `*@example.com namespaces="git,file",valid-after="20240101",valid-before="20250630120000Z" {k1}` + "\n" +
				`bob@example.com VALID-AFTER="202401011200UTC" {k2}`,
			want: []allowedSigner{
				{line: 1, principals: "*@example.com", namespaces: "git,file", validAfter: time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("test", 3600)), validBefore: utc(2025, 6, 30, 12, 0, 0), key: k1},
				{line: 2, principals: "bob@example.com", validAfter: utc(2024, 1, 1, 12, 0, 0), key: k2},
			},
		},
		{
			name: "quoted principals and an option value with a space and a quote",
			file: `"alice@example.com,a b" namespaces="git, \"x\"" {k1}`,
			want: []allowedSigner{{line: 1, principals: "alice@example.com,a b", namespaces: `git, "x"`, key: k1}},
		},
		{
			name: "tabs between fields",
			file: "alice@example.com\tnamespaces=\"git\"\t{k1}",
			want: []allowedSigner{{line: 1, principals: "alice@example.com", namespaces: "git", key: k1}},
		},
		{
			name:    "empty file",
			file:    "# nobody yet\n",
			wantErr: `parse allowed_signers allowed_signers: no signers listed: ` + syntax,
		},
		{
			name:    "no key",
			file:    "alice@example.com\n",
			wantErr: `parse allowed_signers allowed_signers: line 1: no key after the principals "alice@example.com": ` + syntax,
		},
		{
			name:    "key without principals",
			file:    "{k1}\n",
			wantErr: `parse allowed_signers allowed_signers: line 1: the line starts with key type ssh-ed25519, not with principals: ` + syntax,
		},
		{
			name:    "cert-authority",
			file:    "# CA\n*@example.com cert-authority {k1}\n",
			wantErr: "parse allowed_signers allowed_signers: line 2: cert-authority is not supported: signatures made with SSH certificates are not checked; list each signer's own key instead",
		},
		{
			name:    "unknown option",
			file:    `alice@example.com namespaces="git",no-touch-required {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: unknown option "no-touch-required": allowed_signers takes namespaces=, valid-after= and valid-before=`,
		},
		{
			name:    "unquoted value",
			file:    `alice@example.com namespaces=git {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: option namespaces: put the value in double quotes, as namespaces="..."`,
		},
		{
			name:    "option without value",
			file:    `alice@example.com valid-after {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: option valid-after needs a value in double quotes, as valid-after="..."`,
		},
		{
			name:    "option given twice",
			file:    `alice@example.com namespaces="git",Namespaces="file" {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: option Namespaces is given twice: keep one`,
		},
		{
			name:    "unclosed quote",
			file:    `alice@example.com namespaces="git {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: an option's opening quote is never closed`,
		},
		{
			name:    "bad time",
			file:    `alice@example.com valid-before="2025-01-01" {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: valid-before: "2025-01-01" is not a time: write YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, with Z for UTC`,
		},
		{
			name:    "empty window",
			file:    `alice@example.com valid-after="20250101Z",valid-before="20240101Z" {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: valid-before is not after valid-after: the key would never be valid`,
		},
		{
			name:    "trailing comma in options",
			file:    `alice@example.com namespaces="git", {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: the options end with a comma: remove it`,
		},
		{
			name:    "cut key",
			file:    "alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIpvz5ZSZm\n",
			wantErr: `parse allowed_signers allowed_signers: line 1: the ssh-ed25519 key is not valid base64: copy the whole key, on one line, from the .pub file`,
		},
		{
			name:    "key type does not match the key",
			file:    "alice@example.com ssh-rsa " + strings.Fields(line1)[1],
			wantErr: `parse allowed_signers allowed_signers: line 1: the key is of type ssh-ed25519, not ssh-rsa as the line says: write ssh-ed25519 before it`,
		},
		{
			name:    "certificate instead of a key",
			file:    "alice@example.com ssh-ed25519-cert-v01@openssh.com AAAA",
			wantErr: `parse allowed_signers allowed_signers: line 1: key type ssh-ed25519-cert-v01@openssh.com is a certificate: list the plain key it certifies instead`,
		},
		{
			name:    "DSA key",
			file:    "alice@example.com ssh-dss AAAAB3NzaC1kc3M=",
			wantErr: `parse allowed_signers allowed_signers: line 1: ssh-dss (DSA) keys are not accepted: DSA is insecure and OpenSSH dropped it; sign with an ed25519 key`,
		},
		{
			name:    "stray quote in principals",
			file:    `alice"@example.com {k1}`,
			wantErr: `parse allowed_signers allowed_signers: line 1: stray quote in the principals "alice\"@example.com": quote all of them or none`,
		},
		{
			name:    "error names the right line",
			file:    "alice@example.com {k1}\n\n# bob\nbob@example.com namespaces=\"\" {k2}\n",
			wantErr: `parse allowed_signers allowed_signers: line 4: namespaces="" allows no namespace: write namespaces="git", or leave the option out`,
		},
	}
	loc := time.FixedZone("test", 3600)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := strings.NewReplacer("{k1}", line1, "{k2}", line2).Replace(tt.file)
			got, err := parseAllowedSigners("allowed_signers", []byte(file), loc)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("parseAllowedSigners() error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmpSigners...); diff != "" {
				t.Errorf("parseAllowedSigners() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseAllowedSignersFiles reads the files of testdata/allowed_signers
// and compares what is made of them, or the error, with the .golden file
// beside each. Run with -update to rewrite the golden files.
func TestParseAllowedSignersFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "allowed_signers", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			signers, err := parseAllowedSigners(filepath.ToSlash(file), data, time.UTC)
			if err != nil {
				fmt.Fprintf(&got, "error: %v\n", err)
			}
			for _, s := range signers {
				fmt.Fprintf(&got, "%s\n", describe(s))
			}
			golden(t, strings.TrimSuffix(file, ".txt")+".golden", got.String())
		})
	}
}

// describe prints an entry for golden files.
func describe(s allowedSigner) string {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	ns := s.namespaces
	if ns == "" {
		ns = "*"
	}
	return fmt.Sprintf("line %d: principals %q namespaces %q valid %s..%s key %s %s",
		s.line, s.principals, ns, when(s.validAfter), when(s.validBefore), s.key.Type(), ssh.FingerprintSHA256(s.key))
}

func TestMatchPatternList(t *testing.T) {
	tests := []struct {
		s, patterns string
		want        bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"alice@example.com", "bob@example.com,alice@example.com", true},
		{"alice@example.com", "Alice@example.com", false},
		{"alice@example.com", "*@example.com", true},
		{"alice@example.com", "*@example.org", false},
		{"alice@example.com", "a?ice@*", true},
		{"alice@example.com", "*", true},
		{"", "*", true},
		{"", "", true},
		{"alice", "", false},
		{"alice@example.com", "*@example.com,!alice@*", false},
		{"bob@example.com", "*@example.com,!alice@*", true},
		{"alice@example.com", "!alice@example.com", false},
		{"bob@example.com", "!alice@example.com", false},
		{"git", "git,file", true},
		{"git", "gi", false},
		{"git", "g*t*", true},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*a*a*a*a*c", false},
	}
	for _, tt := range tests {
		if got := matchPatternList(tt.s, tt.patterns); got != tt.want {
			t.Errorf("matchPatternList(%q, %q) = %v, want %v", tt.s, tt.patterns, got, tt.want)
		}
	}
}
