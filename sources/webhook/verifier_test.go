package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestVerifyAcceptsEachProvider(t *testing.T) {
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			v := newVerifier(t)
			body := readTestdata(t, testdataFor(provider))
			p, err := v.Verify(signed(provider, []byte(canary), body, deliveryFor(provider)), body)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Provider != provider || p.Delivery != deliveryFor(provider) {
				t.Errorf("Verify = %s delivery %s, want %s delivery %s", p.Provider, p.Delivery, provider, deliveryFor(provider))
			}
		})
	}
}

// refusal is one request Verify must refuse.
type refusal struct {
	name     string
	provider string // the fixture to start from
	edit     func(h http.Header, body []byte) (http.Header, []byte)
	want     Reason
}

// refusals are the requests the Verifier must refuse, each made from a
// valid delivery of provider's fixture.
var refusals = []refusal{
	{"github bad signature", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("ab", 32))
		return h, b
	}, ReasonBadSignature},
	{"github signature for another body", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		return h, bytes.Replace(b, []byte("refs/heads/main"), []byte("refs/heads/prod"), 1)
	}, ReasonBadSignature},
	{"github missing signature header", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("X-Hub-Signature-256")
		return h, b
	}, ReasonBadSignature},
	{"github legacy sha1 signature only", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("X-Hub-Signature-256")
		h.Set("X-Hub-Signature", "sha1=0000000000000000000000000000000000000000")
		return h, b
	}, ReasonBadSignature},
	{"github signature without its prefix", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Hub-Signature-256", hmacHex([]byte(canary), b))
		return h, b
	}, ReasonBadSignature},
	{"github two signature headers", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Add("X-Hub-Signature-256", h.Get("X-Hub-Signature-256"))
		return h, b
	}, ReasonBadSignature},
	{"github wrong secret", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		return signed(GitHub, []byte("another secret"), b, githubDelivery), b
	}, ReasonBadSignature},
	{"gitea wrong secret", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		return signed(Gitea, []byte("another secret"), b, giteaDelivery), b
	}, ReasonBadSignature},
	{"gitea signature for another body", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		return h, append(b, ' ')
	}, ReasonBadSignature},
	{"gitea missing signature header", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("X-Gitea-Signature")
		return h, b
	}, ReasonBadSignature},
	{"gitea signature that is not hex", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Gitea-Signature", strings.Repeat("zz", 32))
		return h, b
	}, ReasonBadSignature},
	{"gitlab wrong token", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Gitlab-Token", canary+"-not")
		return h, b
	}, ReasonBadSignature},
	{"gitlab token that is a prefix of the secret", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Gitlab-Token", canary[:10])
		return h, b
	}, ReasonBadSignature},
	{"gitlab missing token", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("X-Gitlab-Token")
		return h, b
	}, ReasonBadSignature},
	{"gitlab signed with the wrong key", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		return signedStd([]byte("another key"), b, gitlabDelivery, time.Now().Unix()), b
	}, ReasonBadSignature},
	{"gitlab signature for another body", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		return signedStd([]byte(canary), b, gitlabDelivery, time.Now().Unix()), append(b, '\n')
	}, ReasonBadSignature},
	{"gitlab signature for another id", GitLab, func(_ http.Header, b []byte) (http.Header, []byte) {
		h := signedStd([]byte(canary), b, gitlabDelivery, time.Now().Unix())
		h.Set("Webhook-Id", "msg_other")
		return h, b
	}, ReasonBadSignature},
	{"gitlab signature without a timestamp", GitLab, func(_ http.Header, b []byte) (http.Header, []byte) {
		h := signedStd([]byte(canary), b, gitlabDelivery, time.Now().Unix())
		h.Del("Webhook-Timestamp")
		return h, b
	}, ReasonBadSignature},
	{"gitlab bad signature does not fall back to a good token", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
		h.Set("Webhook-Id", gitlabDelivery)
		h.Set("Webhook-Timestamp", fmt.Sprint(time.Now().Unix()))
		return h, b
	}, ReasonBadSignature},
	{"gitlab signed an hour ago", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		return signedStd([]byte(canary), b, gitlabDelivery, time.Now().Add(-time.Hour).Unix()), b
	}, ReasonReplayed},
	{"oversized body", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		big := append(bytes.Repeat([]byte(" "), DefaultMaxBodySize), b...)
		return signed(GitHub, []byte(canary), big, githubDelivery), big
	}, ReasonTooLarge},
	{"github non-push event", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-GitHub-Event", "pull_request")
		return h, b
	}, ReasonUnsupportedEvent},
	{"gitlab non-push event", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Gitlab-Event", "Merge Request Hook")
		return h, b
	}, ReasonUnsupportedEvent},
	{"gitea non-push event", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("X-Gitea-Event", "issues")
		return h, b
	}, ReasonUnsupportedEvent},
	{"no provider's headers", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("X-GitHub-Event")
		return h, b
	}, ReasonUnsupportedEvent},
	{"github garbage json, correctly signed", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		junk := []byte(`{"ref": "refs/heads/main", "commits": [garbage`)
		return signed(GitHub, []byte(canary), junk, githubDelivery), junk
	}, ReasonMalformed},
	{"gitea garbage json, correctly signed", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		junk := []byte("\x00\xff not json")
		return signed(Gitea, []byte(canary), junk, giteaDelivery), junk
	}, ReasonMalformed},
	{"gitlab garbage json, correct token", GitLab, func(h http.Header, b []byte) (http.Header, []byte) {
		return h, []byte("[1, 2")
	}, ReasonMalformed},
	{"form-encoded payload", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		return h, b
	}, ReasonMalformed},
	{"no content type", Gitea, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("Content-Type")
		return h, b
	}, ReasonMalformed},
	{"missing delivery id, correctly signed", GitHub, func(h http.Header, b []byte) (http.Header, []byte) {
		h.Del("X-GitHub-Delivery")
		return h, b
	}, ReasonMalformed},
}

func TestVerifyRefusals(t *testing.T) {
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t)
			body := readTestdata(t, testdataFor(tt.provider))
			h, body := tt.edit(signed(tt.provider, []byte(canary), body, deliveryFor(tt.provider)), body)
			p, err := v.Verify(h, body)
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Verify = %+v, %v; want a refusal", p, err)
			}
			if e.Reason != tt.want {
				t.Errorf("Reason = %s (%v), want %s", e.Reason, e, tt.want)
			}
			// A refused delivery is not remembered: the genuine one, sent
			// after a forgery with its ID, is accepted.
			if tt.want == ReasonBadSignature {
				good := readTestdata(t, testdataFor(tt.provider))
				if _, err := v.Verify(signed(tt.provider, []byte(canary), good, deliveryFor(tt.provider)), good); err != nil {
					t.Errorf("genuine delivery after a forgery: %v", err)
				}
			}
		})
	}
}

func TestVerifyRefusesProvidersNotAccepted(t *testing.T) {
	v := newVerifier(t, WithProviders(GitHub))
	body := readTestdata(t, "gitea-push.json")
	_, err := v.Verify(signed(Gitea, []byte(canary), body, giteaDelivery), body)
	if e, ok := errors.AsType[*Error](err); !ok || e.Reason != ReasonUnsupportedEvent || e.Provider != Gitea {
		t.Errorf("Verify(gitea) with only github accepted = %v, want unsupported_event", err)
	}
}

func TestVerifyRefusesReplays(t *testing.T) {
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			v := newVerifier(t)
			body := readTestdata(t, testdataFor(provider))
			h := signed(provider, []byte(canary), body, deliveryFor(provider))
			if _, err := v.Verify(h, body); err != nil {
				t.Fatalf("first delivery: %v", err)
			}
			_, err := v.Verify(h, body)
			if e, ok := errors.AsType[*Error](err); !ok || e.Reason != ReasonReplayed {
				t.Errorf("replayed delivery: %v, want replayed", err)
			}
		})
	}
}

func TestReplayCacheIsPerProvider(t *testing.T) {
	v := newVerifier(t)
	for _, provider := range []string{GitHub, Gitea} {
		body := readTestdata(t, testdataFor(provider))
		if _, err := v.Verify(signed(provider, []byte(canary), body, "same-id"), body); err != nil {
			t.Errorf("%s delivery same-id: %v", provider, err)
		}
	}
}

func TestReplayCacheForgetsTheLeastRecentlySeen(t *testing.T) {
	v := newVerifier(t, WithReplayCacheSize(2))
	body := readTestdata(t, "github-push.json")
	send := func(id string) error {
		_, err := v.Verify(signed(GitHub, []byte(canary), body, id), body)
		return err
	}
	for _, id := range []string{"a", "b"} {
		if err := send(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := send("a"); err == nil { // refreshes a
		t.Fatal("replay of a accepted")
	}
	if err := send("c"); err != nil { // evicts b, the least recently seen
		t.Fatal(err)
	}
	if err := send("a"); err == nil {
		t.Error("replay of a accepted after c: a should still be remembered")
	}
	if err := send("b"); err != nil {
		t.Errorf("b, forgotten, refused: %v", err)
	}
}

func TestGitLabSignedDeliveries(t *testing.T) {
	rawKey := []byte("0123456789abcdef0123456789abcdef")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(rawKey)
	body := readTestdata(t, "gitlab-push.json")
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	tests := []struct {
		name   string
		opts   []Option
		offset time.Duration // of the signed timestamp from now
		edit   func(http.Header)
		want   Reason // "" for accepted
	}{
		{name: "signed now", offset: 0},
		{name: "signed within the window", offset: -4 * time.Minute},
		{name: "from a clock a little ahead", offset: 4 * time.Minute},
		{name: "signed before the window", offset: -6 * time.Minute, want: ReasonReplayed},
		{name: "signed after the window", offset: 6 * time.Minute, want: ReasonReplayed},
		{name: "signed before a wider window", offset: -6 * time.Minute, opts: []Option{WithClockWindow(10 * time.Minute)}},
		{name: "one of several signatures matches", edit: func(h http.Header) {
			h.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" v1a,c2ln "+h.Get("Webhook-Signature"))
		}},
		{name: "only asymmetric signatures", edit: func(h http.Header) { h.Set("Webhook-Signature", "v1a,c2lnbmF0dXJl") }, want: ReasonBadSignature},
		{name: "timestamp with a sign", edit: func(h http.Header) { h.Set("Webhook-Timestamp", "+"+h.Get("Webhook-Timestamp")) }, want: ReasonBadSignature},
		{name: "too many signatures", edit: func(h http.Header) {
			h.Set("Webhook-Signature", strings.Repeat(h.Get("Webhook-Signature")+" ", 9))
		}, want: ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				v, err := New([]byte(whsec), tt.opts...)
				if err != nil {
					t.Fatal(err)
				}
				h := signedStd(rawKey, body, id, time.Now().Add(tt.offset).Unix())
				if tt.edit != nil {
					tt.edit(h)
				}
				p, err := v.Verify(h, body)
				if tt.want == "" {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if p.Delivery != id {
						t.Errorf("Delivery = %q, want the signed webhook-id %q", p.Delivery, id)
					}
					return
				}
				if e, ok := errors.AsType[*Error](err); !ok || e.Reason != tt.want {
					t.Errorf("Verify = %v, want %s", err, tt.want)
				}
			})
		})
	}
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		opts   []Option
	}{
		{"empty secret", "", nil},
		{"unknown provider", canary, []Option{WithProviders("bitbucket")}},
		{"no provider", canary, []Option{WithProviders()}},
		{"zero clock window", canary, []Option{WithClockWindow(0)}},
		{"zero replay cache", canary, []Option{WithReplayCacheSize(0)}},
		{"zero body size", canary, []Option{WithMaxBodySize(0)}},
		{"signing secret that is not base64", "whsec_" + canary, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New([]byte(tt.secret), tt.opts...)
			if err == nil {
				t.Fatalf("New = %v, want an error", v)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
}

func TestNewCopiesTheSecret(t *testing.T) {
	key := []byte(canary)
	v := newVerifier(t)
	v2, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	copy(key, "XXXXXXXX")
	body := readTestdata(t, "github-push.json")
	h := signed(GitHub, []byte(canary), body, githubDelivery)
	for _, v := range []*Verifier{v, v2} {
		if _, err := v.Verify(h, body); err != nil {
			t.Errorf("Verify after the caller changed its slice: %v", err)
		}
	}
}
