package local_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
)

func ExampleNew() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "reconciler")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	// The operator makes the KEK once (here in code; on a real machine with
	// head -c 32 /dev/urandom | base64 > kek; chmod 600 kek) and the
	// reconciler loads it.
	kekFile := filepath.Join(tmp, "kek")
	kek, err := local.GenerateKEK()
	if err != nil {
		log.Fatal(err)
	}
	if err := local.WriteKEKFile(kekFile, kek); err != nil {
		log.Fatal(err)
	}
	kek, err = local.LoadKEK(kekFile)
	if err != nil {
		log.Fatal(err)
	}

	p, err := local.New(ctx, filepath.Join(tmp, "state"), kek)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := p.Issue(ctx, vault.CertificateRequest{
		Instance: "orders-db",
		Hosts:    []string{"orders-db.db.internal", "10.0.4.17"},
		TTL:      24 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := vault.ParseLeaf(cert.CertPEM)
	if err != nil {
		log.Fatal(err)
	}
	chain, err := vault.ParseChain(cert.ChainPEM)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	fmt.Println("issued by", chain[0].Subject.CommonName)
	fmt.Println("valid for", cert.NotAfter.Sub(cert.NotBefore))
	fmt.Println("key", cert.Key)
	// Output:
	// orders-db [orders-db.db.internal] [10.0.4.17]
	// issued by reconciler local CA
	// valid for 24h1m0s
	// key [redacted]
}

func ExampleProvider_NewKey() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "reconciler")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	kek, err := local.GenerateKEK()
	if err != nil {
		log.Fatal(err)
	}
	p, err := local.New(ctx, tmp, kek)
	if err != nil {
		log.Fatal(err)
	}

	k, err := p.NewKey(ctx, "orders-db")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitAfterN(string(k.Wrapped), ":", 3)[:2], "version", k.MasterVersion)

	// After a rotation, stored keys move to the new master key version.
	if err := p.RotateMaster(ctx); err != nil {
		log.Fatal(err)
	}
	rewrapped, err := p.Rewrap(ctx, "orders-db", k.Wrapped)
	if err != nil {
		log.Fatal(err)
	}
	key, err := p.Unwrap(ctx, "orders-db", rewrapped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitAfterN(string(rewrapped), ":", 3)[:2], "same key:", bytes.Equal(key, k.Plaintext))
	// Output:
	// [local: v1:] version 1
	// [local: v2:] same key: true
}
