package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/vault/local"
)

func ExampleChangeKEK() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "reconciler")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "state")

	old, err := local.GenerateKEK()
	if err != nil {
		log.Fatal(err)
	}
	p, err := local.New(ctx, dir, old)
	if err != nil {
		log.Fatal(err)
	}
	k, err := p.NewKey(ctx, "orders-db")
	if err != nil {
		log.Fatal(err)
	}
	// The reconciler stops (closing its Provider) before the change:
	// ChangeKEK refuses a directory that is in use.
	p.Close()

	next, err := local.GenerateKEK()
	if err != nil {
		log.Fatal(err)
	}
	if err := local.ChangeKEK(ctx, dir, old, next); err != nil {
		log.Fatal(err)
	}

	// It starts again with the new KEK; keys wrapped before still unwrap.
	_, err = local.New(ctx, dir, old)
	fmt.Println("old KEK refused:", errors.Is(err, local.ErrWrongKEK))
	p, err = local.New(ctx, dir, next)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	key, err := p.Unwrap(ctx, "orders-db", k.Wrapped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same RPC key:", bytes.Equal(key, k.Plaintext))
	// Output:
	// old KEK refused: true
	// same RPC key: true
}
