package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// canary is the tests' secret. It must show up in no error, log line,
// response or metric, in any common encoding.
const canary = "CANARY-webhook-secret-0f3a9c1e5b7d2468"

// The delivery IDs the fixtures are sent with.
const (
	githubDelivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	gitlabDelivery = "908a6d9e-45fd-46c8-97e6-c4f350f219dd"
	giteaDelivery  = "f6266f16-1bf3-46a5-9ea4-602e06ead473"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hmacHex and hmacBase64 are written apart from the package's own mac, so
// that a mistake there is not mirrored here.
func hmacHex(key, msg []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return hex.EncodeToString(h.Sum(nil))
}

func hmacBase64(key, msg []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// signed returns the headers provider sends with body, signed (or, for
// GitLab, authenticated by token) with secret.
func signed(provider string, secret, body []byte, delivery string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "test")
	switch provider {
	case GitHub:
		h.Set("X-GitHub-Event", "push")
		h.Set("X-GitHub-Delivery", delivery)
		h.Set("X-GitHub-Hook-ID", "473201956")
		h.Set("X-Hub-Signature-256", "sha256="+hmacHex(secret, body))
	case GitLab:
		h.Set("X-Gitlab-Event", "Push Hook")
		h.Set("X-Gitlab-Token", string(secret))
		h.Set("Idempotency-Key", delivery)
		h.Set("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
		h.Set("X-Gitlab-Instance", "https://gitlab.example.com")
	case Gitea:
		// Gitea sends GitHub's and Gogs' headers too.
		for _, p := range []string{"X-Gitea-", "X-Gogs-", "X-GitHub-"} {
			h.Set(p+"Event", "push")
			h.Set(p+"Delivery", delivery)
		}
		h.Set("X-Gitea-Event-Type", "push")
		h.Set("X-Gitea-Signature", hmacHex(secret, body))
		h.Set("X-Hub-Signature-256", "sha256="+hmacHex(secret, body))
	}
	return h
}

// signedStd returns the headers of a GitLab delivery signed with a signing
// token (Standard Webhooks), with key as the HMAC key.
func signedStd(key, body []byte, id string, unix int64) http.Header {
	ts := strconv.FormatInt(unix, 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Gitlab-Event", "Push Hook")
	h.Set("Idempotency-Key", id)
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", ts)
	h.Set("Webhook-Signature", "v1,"+hmacBase64(key, []byte(id+"."+ts+"."+string(body))))
	return h
}

func testdataFor(provider string) string {
	return provider + "-push.json"
}

func deliveryFor(provider string) string {
	switch provider {
	case GitHub:
		return githubDelivery
	case GitLab:
		return gitlabDelivery
	}
	return giteaDelivery
}

func newVerifier(t testing.TB, opts ...Option) *Verifier {
	t.Helper()
	v, err := New([]byte(canary), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
