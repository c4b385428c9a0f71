package signature_test

import (
	"errors"
	"fmt"
	"log"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/sources/signature"
)

func ExampleVerifier_VerifyCommit() {
	v, err := signature.New(signature.Config{
		AllowedSigners: "testdata/fixture/allowed_signers",
		GPGKeyring:     "testdata/fixture/keyring.asc",
	})
	if err != nil {
		log.Fatal(err)
	}
	// A commit as go-git's Repository.CommitObject returns it.
	for _, name := range []string{"ssh", "gpg", "unsigned"} {
		commit, err := readCommit(filepath.Join("testdata", "fixture", name+".commit"))
		if err != nil {
			log.Fatal(err)
		}
		signer, err := v.VerifyCommit(commit)
		var refused *signature.Error
		switch {
		case errors.As(err, &refused):
			fmt.Printf("%s: refused: %v\n", name, refused.Reason)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("%s: %s signature by %s, trusted by %s\n", name, signer.Format, signer.Principal, signer.TrustedBy)
		}
	}
	// Output:
	// ssh: ssh signature by alice@example.com, trusted by testdata/fixture/allowed_signers:2
	// gpg: openpgp signature by Carol <carol@example.com>, trusted by testdata/fixture/keyring.asc
	// unsigned: refused: not signed
}

func ExampleParseMode() {
	for _, s := range []string{"", "head", "strict", "all"} {
		m, err := signature.ParseMode(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q: %s\n", s, m)
	}
	// Output:
	// "": off
	// "head": head
	// "strict": strict
	// parse verification mode: "all" is not a mode: use off, head or strict
}
