package inline_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/inline"
	"github.com/reconciler-dev/reconciler/vault/inline/inlinetest"
)

func ExampleNew() {
	// A directory with one instance's files, as a team's own CA would
	// deliver them: <dir>/orders-db/{tls.crt,tls.key,ca.crt}.
	dir, err := os.MkdirTemp("", "certs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ca := inlinetest.NewCA("orders")
	leaf := ca.Sign(inlinetest.Template("orders-db", "orders-db.db.internal", "10.0.4.17"), nil)
	if err := inlinetest.Write(dir, "orders-db", leaf.Files()); err != nil {
		log.Fatal(err)
	}

	iss, err := inline.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	c, err := iss.Issue(ctx, vault.CertificateRequest{Instance: "orders-db", Hosts: []string{"orders-db.db.internal", "10.0.4.17"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("issued by the team's CA, key", c.Key)

	// An instance whose certificate does not cover one of its hosts is
	// refused, and the error says which file to fix and how.
	_, err = iss.Issue(ctx, vault.CertificateRequest{Instance: "orders-db", Hosts: []string{"orders-db.db.internal", "10.0.4.18"}})
	fmt.Println(err)
	// Output:
	// issued by the team's CA, key [redacted]
	// orders-db/tls.crt does not cover host 10.0.4.18 (SANs: orders-db.db.internal, 10.0.4.17); reissue it with that SAN
}
