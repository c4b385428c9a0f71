package none_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/none"
)

func ExampleNew() {
	iss := none.New()
	_, err := iss.Issue(context.Background(), vault.CertificateRequest{Instance: "legacy-db"})
	fmt.Println(errors.Is(err, vault.ErrNoSSL))
	fmt.Println(err)
	// Output:
	// true
	// issue certificate for legacy-db: this key provider issues no certificates: the instance asks for ssl: enabled but its key provider is "none"; set spec.ssl: disabled, or choose a provider that issues certificates in spec.tls.provider (vault, local, inline, href)
}
