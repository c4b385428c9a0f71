package verify_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/reconciler-dev/reconciler/agent/verify"
	"github.com/reconciler-dev/reconciler/vault"
)

func ExampleCheck() {
	// A stand-in for Manticore's https listener.
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	leaf := srv.Certificate()
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	addr := srv.Listener.Addr().String()
	ctx := context.Background()

	err := verify.Check(ctx, verify.Manticore, addr, roots, "example.com", vault.Fingerprint(leaf.Raw))
	fmt.Println("issued certificate:", err)

	err = verify.Check(ctx, verify.Manticore, addr, roots, "example.com", "00")
	var m *verify.MismatchError
	fmt.Println("other certificate:", errors.As(err, &m) && m.Served.Serial == vault.SerialString(leaf.SerialNumber))
	// Output:
	// issued certificate: <nil>
	// other certificate: true
}
