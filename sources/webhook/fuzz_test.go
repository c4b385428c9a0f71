package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// seedPayloads adds every testdata payload whose name starts with prefix.
func seedPayloads(f *testing.F, prefix string, add func(body []byte)) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", prefix+"*.json"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no %s payloads in testdata: %v", prefix, err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// checkParse holds Parse to its contract on any input: a refusal of the
// package's own kind with a fixed message, or a Push whose fields are
// what Push documents.
func checkParse(t *testing.T, provider string, body []byte, p *Push, err error) {
	t.Helper()
	if err != nil {
		if p != nil {
			t.Fatalf("a push and an error: %+v, %v", p, err)
		}
		if errors.Is(err, ErrPing) {
			return
		}
		e, ok := errors.AsType[*Error](err)
		if !ok || !slices.Contains(reasons, e.Reason) {
			t.Fatalf("error %v is not a refusal", err)
		}
		if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
			t.Fatalf("error echoes the body: %v", err)
		}
		return
	}
	if p.Provider != provider || !validDelivery(p.Delivery) || !validRef(p.Ref) || !validHash(p.Before) || !validHash(p.After) {
		t.Fatalf("invalid push accepted: %+v", p)
	}
	if !slices.IsSorted(p.Changed) || len(slices.Compact(slices.Clone(p.Changed))) != len(p.Changed) {
		t.Fatalf("Changed not sorted and unique: %q", p.Changed)
	}
	for _, c := range p.Changed {
		if c == "" || strings.HasPrefix(c, "/") || slices.Contains(strings.Split(c, "/"), "..") {
			t.Fatalf("Changed holds %q", c)
		}
	}
}

func fuzzParse(f *testing.F, provider, eventHeader string, events ...string) {
	seedPayloads(f, provider, func(b []byte) {
		for _, e := range events {
			f.Add(e, b)
		}
	})
	f.Add(events[0], []byte(`{"ref":"refs/heads/main","before":"`+hash('1')+`","after":"`+hash('2')+`","commits":[{"added":["a",".."]}],"repository":{"full_name":"x"}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		h := signed(provider, []byte(canary), body, deliveryFor(provider))
		h.Set(eventHeader, event)
		p, err := Parse(provider, h, body)
		checkParse(t, provider, body, p, err)
	})
}

func FuzzParseGitHub(f *testing.F) { fuzzParse(f, GitHub, "X-GitHub-Event", "push", "ping") }
func FuzzParseGitLab(f *testing.F) { fuzzParse(f, GitLab, "X-Gitlab-Event", "Push Hook") }
func FuzzParseGitea(f *testing.F)  { fuzzParse(f, Gitea, "X-Gitea-Event", "push") }

// seedSums adds the HMAC-SHA256 of every testdata payload, the seeds of
// the signature parsers.
func seedSums(f *testing.F, add func(sum []byte)) {
	for _, p := range providers {
		seedPayloads(f, p, func(b []byte) {
			h := hmac.New(sha256.New, []byte(canary))
			h.Write(b)
			add(h.Sum(nil))
		})
	}
}

func FuzzParseGitHubSignature(f *testing.F) {
	seedSums(f, func(sum []byte) { f.Add("sha256=" + hex.EncodeToString(sum)) })
	f.Add("sha1=0000000000000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, v string) {
		sum, err := parseGitHubSignature(v)
		if err != nil {
			return
		}
		if len(sum) != sha256.Size || !strings.EqualFold(v, "sha256="+hex.EncodeToString(sum)) {
			t.Fatalf("parseGitHubSignature(%q) = %x", v, sum)
		}
	})
}

func FuzzParseGiteaSignature(f *testing.F) {
	seedSums(f, func(sum []byte) { f.Add(hex.EncodeToString(sum)) })
	f.Fuzz(func(t *testing.T, v string) {
		sum, err := parseGiteaSignature(v)
		if err != nil {
			return
		}
		if len(sum) != sha256.Size || !strings.EqualFold(v, hex.EncodeToString(sum)) {
			t.Fatalf("parseGiteaSignature(%q) = %x", v, sum)
		}
	})
}

func FuzzParseStdSignatures(f *testing.F) {
	seedSums(f, func(sum []byte) {
		s := base64.StdEncoding.EncodeToString(sum)
		f.Add("v1," + s)
		f.Add("v1," + s + " v1a,c2lnbmF0dXJl v1," + s)
	})
	f.Fuzz(func(t *testing.T, v string) {
		sums, err := parseStdSignatures(v)
		if err != nil {
			return
		}
		if len(sums) == 0 || len(sums) > maxStdSignatures {
			t.Fatalf("parseStdSignatures(%q): %d signatures", v, len(sums))
		}
		for _, s := range sums {
			if len(s) != sha256.Size || !strings.Contains(v, "v1,"+base64.StdEncoding.EncodeToString(s)) {
				t.Fatalf("parseStdSignatures(%q) = %x", v, s)
			}
		}
	})
}

// FuzzVerify sends arbitrary bodies, validly signed, through the whole
// check, so that the fuzzer reaches the parser as a provider would.
func FuzzVerify(f *testing.F) {
	for _, p := range providers {
		seedPayloads(f, p, func(b []byte) { f.Add(p, b) })
	}
	f.Fuzz(func(t *testing.T, provider string, body []byte) {
		if !slices.Contains(providers, provider) {
			return
		}
		v := newVerifier(t, WithReplayCacheSize(1))
		h := signed(provider, []byte(canary), body, deliveryFor(provider))
		p, err := v.Verify(h, body)
		checkParse(t, provider, body, p, err)
		if err == nil {
			if _, err := v.Verify(h, body); err == nil {
				t.Fatal("replay accepted")
			}
		}
	})
}
