package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/sources/webhook"
)

func ExampleVerifier_Handler() {
	secret := []byte("the webhook secret, 32 random bytes or more")
	v, err := webhook.New(secret,
		webhook.WithProviders(webhook.GitHub),
		webhook.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		log.Fatal(err)
	}

	// onPush must not block: it asks for a fetch, and a push that arrives
	// while one is already asked for adds nothing.
	fetch := make(chan webhook.Push, 1)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/webhooks/git", v.Handler(func(_ context.Context, p webhook.Push) {
		select {
		case fetch <- p:
		default:
		}
	}))

	// What GitHub sends for a push to main.
	body := []byte(`{
		"ref": "refs/heads/main",
		"before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
		"after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		"repository": {"full_name": "platform/fleet", "clone_url": "https://github.com/platform/fleet.git"},
		"commits": [{"added": [], "removed": [], "modified": ["instances/orders-db.yaml"]}]
	}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	deliver := func() {
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/git", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Print(rec.Code, " ", rec.Body.String())
	}
	deliver()
	deliver() // the same delivery again: a replay

	p := <-fetch
	fmt.Println(p.Repository.HTTPURL, p.Ref, p.After[:7], p.Changed)
	// Output:
	// 202 accepted
	// 403 replayed
	// https://github.com/platform/fleet.git refs/heads/main 0d1a26e [instances/orders-db.yaml]
}
