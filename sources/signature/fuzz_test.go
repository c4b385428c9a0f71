package signature

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// FuzzParseAllowedSigners checks that no file makes the parser panic, and
// that what it reads, written out again, reads the same. The seeds are in
// testdata/fuzz/FuzzParseAllowedSigners.
func FuzzParseAllowedSigners(f *testing.F) {
	_, key := testKey(f, 1)
	for _, seed := range []string{
		"alice@example.com " + key,
		`"a b,*@x" namespaces="git,\"f\"",valid-after="20240101",valid-before="203001011200Z" ` + key + " comment",
		"# c\n\n\t \r\nalice@example.com\tvalid-before=\"20300101000000UTC\"\t" + key + "\r\n",
		"alice@example.com cert-authority " + key,
		"alice@example.com " + key + ` valid-before="20200101"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		signers, err := parseAllowedSigners("fuzz", data, time.UTC)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse allowed_signers fuzz: ") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		var out strings.Builder
		for _, s := range signers {
			if s.key == nil || s.line < 1 || s.principals == "" {
				t.Fatalf("incomplete entry %+v", s)
			}
			out.WriteString(format(s) + "\n")
		}
		again, err := parseAllowedSigners("fuzz", []byte(out.String()), time.UTC)
		if err != nil {
			t.Fatalf("reading %q again: %v", out.String(), err)
		}
		for i := range again {
			again[i].line = signers[i].line
		}
		if diff := cmp.Diff(signers, again, cmpSigners...); diff != "" {
			t.Fatalf("read again (-first +again):\n%s", diff)
		}
	})
}

// format writes s as an allowed_signers line.
func format(s allowedSigner) string {
	var opts []string
	if s.namespaces != "" {
		opts = append(opts, fmt.Sprintf(`namespaces="%s"`, strings.ReplaceAll(s.namespaces, `"`, `\"`)))
	}
	if !s.validAfter.IsZero() {
		opts = append(opts, `valid-after="`+s.validAfter.UTC().Format("20060102150405")+`Z"`)
	}
	if !s.validBefore.IsZero() {
		opts = append(opts, `valid-before="`+s.validBefore.UTC().Format("20060102150405")+`Z"`)
	}
	line := `"` + s.principals + `"`
	if len(opts) > 0 {
		line += " " + strings.Join(opts, ",")
	}
	return line + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.key)))
}

// FuzzReadKeyring checks that no keyring file makes the reader panic, and
// that none with a private key is accepted.
func FuzzReadKeyring(f *testing.F) {
	armored, err := os.ReadFile(filepath.Join("testdata", "fixture", "keyring.asc"))
	if err != nil {
		f.Fatal(err)
	}
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		f.Fatal(err)
	}
	binary, err := io.ReadAll(block.Body)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(armored)
	f.Add(append(append([]byte{}, armored...), armored...))
	f.Add(binary)
	f.Add([]byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n-----END PGP PRIVATE KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := readKeyring("fuzz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read GPG keyring fuzz") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, e := range keys {
			if e.PrivateKey != nil {
				t.Fatal("accepted a private key")
			}
		}
	})
}
