package vault

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type namedIssuer string

func (n namedIssuer) Issue(context.Context, CertificateRequest) (*Certificate, error) {
	return nil, errors.New(string(n))
}
func (namedIssuer) Revoke(context.Context, string) error    { return nil }
func (namedIssuer) CAChain(context.Context) ([]byte, error) { return nil, nil }

func TestRegistry(t *testing.T) {
	r := Registry{"local": namedIssuer("local"), "vault": namedIssuer("vault")}
	iss, err := r.Issuer("vault")
	if err != nil || iss != namedIssuer("vault") {
		t.Errorf("Issuer(vault) = %v, %v", iss, err)
	}
	_, err = r.Issuer("href")
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), `provider "href" is not configured (configured: local, vault)`) {
		t.Errorf("Issuer(href) error = %v", err)
	}
}

func TestSecretHidesItself(t *testing.T) {
	s := Secret("canary-key-material")
	for _, out := range []string{s.String(), s.GoString()} {
		if strings.Contains(out, "canary") {
			t.Errorf("secret shown: %s", out)
		}
	}
	b, _ := s.MarshalJSON()
	if strings.Contains(string(b), "canary") || string(s.Bytes()) != "canary-key-material" {
		t.Error("MarshalJSON leaks or Bytes lost the secret")
	}
}
