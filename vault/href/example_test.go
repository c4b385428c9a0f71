package href_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/href"
	"github.com/reconciler-dev/reconciler/vault/inline/inlinetest"
)

func ExampleNew() {
	// A team's certificate store: each instance's files under
	// /pki/<instance>/, the key only for holders of a token.
	ca := inlinetest.NewCA("orders")
	files := ca.Sign(inlinetest.Template("orders-db", "orders-db.db.internal"), nil).Files()
	mux := http.NewServeMux()
	mux.HandleFunc("/pki/orders-db/tls.crt", func(w http.ResponseWriter, _ *http.Request) { w.Write(files.Cert) })
	mux.HandleFunc("/pki/orders-db/ca.crt", func(w http.ResponseWriter, _ *http.Request) { w.Write(files.CA) })
	mux.HandleFunc("/pki/orders-db/tls.key", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Write(files.Key)
	})
	store := httptest.NewTLSServer(mux)
	defer store.Close()

	iss, err := href.New(
		href.WithURLs(store.URL+"/pki/{instance}/tls.crt", store.URL+"/pki/{instance}/tls.key", store.URL+"/pki/{instance}/ca.crt"),
		href.WithRootCAs(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: store.Certificate().Raw})),
		href.WithBearerToken(vault.Secret("s3cret")),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer iss.CloseIdleConnections()
	c, err := iss.Issue(context.Background(), vault.CertificateRequest{Instance: "orders-db", Hosts: []string{"orders-db.db.internal"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("downloaded and checked, key", c.Key)

	// Plain http:// is refused outright.
	_, err = href.New(href.WithURLs("http://certs.example/{instance}.crt", "https://certs.example/{instance}.key", "https://certs.example/ca.crt"))
	fmt.Println(err)
	// Output:
	// downloaded and checked, key [redacted]
	// configure href issuer: the certificate URL http://certs.example/{instance}.crt is not https://: certificates and keys must not cross the network in clear
}
