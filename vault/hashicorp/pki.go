package hashicorp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/reconciler-dev/reconciler/vault"
)

// Issue issues a certificate from the PKI role (the RSA role for
// vault.KeyTypeRSA), with the instance as common name and its hosts as
// DNS and IP SANs.
func (c *Client) Issue(ctx context.Context, req vault.CertificateRequest) (*vault.Certificate, error) {
	role := c.cfg.Role
	switch req.KeyType {
	case "", vault.KeyTypeEC:
	case vault.KeyTypeRSA:
		role = c.cfg.RSARole
	default:
		return nil, fmt.Errorf("issue certificate: %w: unknown key type %q", vault.ErrDenied, req.KeyType)
	}
	var dns, ips []string
	for _, h := range req.Hosts {
		if net.ParseIP(h) != nil {
			ips = append(ips, h)
		} else {
			dns = append(dns, h)
		}
	}
	data := map[string]any{
		"common_name":          req.Instance,
		"alt_names":            strings.Join(dns, ","),
		"ip_sans":              strings.Join(ips, ","),
		"ttl":                  req.TTL.String(),
		"private_key_format":   "pkcs8",
		"exclude_cn_from_sans": true,
	}
	path := c.cfg.PKIMount + "/issue/" + role
	var secret *api.Secret
	err := c.do(ctx, "pki", "issue", path, func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().WriteWithContext(ctx, path, data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", req.Instance, err)
	}
	cert, _ := field(secret, "certificate")
	key, _ := field(secret, "private_key")
	if cert == "" || key == "" {
		return nil, fmt.Errorf("issue certificate for %s: vault's answer has no certificate or key", req.Instance)
	}
	var chain []string
	if list, ok := secret.Data["ca_chain"].([]any); ok {
		for _, c := range list {
			if s, ok := c.(string); ok {
				chain = append(chain, strings.TrimSpace(s))
			}
		}
	} else if ca, ok := field(secret, "issuing_ca"); ok {
		chain = append(chain, strings.TrimSpace(ca))
	}
	out, err := vault.NewCertificate([]byte(cert+"\n"), []byte(strings.Join(chain, "\n")+"\n"), vault.Secret(key+"\n"))
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", req.Instance, err)
	}
	c.log.InfoContext(ctx, "issued certificate", "instance", req.Instance, "serial", out.Serial, "not_after", out.NotAfter)
	return out, nil
}

// Revoke revokes a certificate by serial. A serial Vault does not know, or
// one already revoked, is not an error.
func (c *Client) Revoke(ctx context.Context, serial string) error {
	path := c.cfg.PKIMount + "/revoke"
	err := c.do(ctx, "pki", "revoke", path, func(ctx context.Context) error {
		_, err := c.api.Logical().WriteWithContext(ctx, path, map[string]any{"serial_number": serial})
		return err
	})
	if err != nil && !notFound(err) {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	c.log.InfoContext(ctx, "revoked certificate", "serial", serial)
	return nil
}

// notFound reports whether Vault said the certificate does not exist.
func notFound(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return errors.Is(err, vault.ErrDenied) && strings.Contains(err.Error(), "not found")
	}
	return false
}

// CAChain returns the PKI mount's CA chain, root last.
func (c *Client) CAChain(ctx context.Context) ([]byte, error) {
	pem, err := c.readCert(ctx, "ca-chain", "cert/ca_chain")
	if err != nil {
		return nil, fmt.Errorf("read CA chain: %w", err)
	}
	return pem, nil
}

// CRL returns the PKI mount's current certificate revocation list, PEM.
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	pem, err := c.readCert(ctx, "crl", "cert/crl")
	if err != nil {
		return nil, fmt.Errorf("read CRL: %w", err)
	}
	return pem, nil
}

func (c *Client) readCert(ctx context.Context, op, sub string) ([]byte, error) {
	path := c.cfg.PKIMount + "/" + sub
	var secret *api.Secret
	err := c.do(ctx, "pki", op, path, func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	pem, ok := field(secret, "certificate")
	if !ok || pem == "" {
		return nil, fmt.Errorf("%s: empty answer: has the CA been generated (reconciler vault bootstrap)?", path)
	}
	return []byte(strings.TrimSpace(pem) + "\n"), nil
}

func field(s *api.Secret, key string) (string, bool) {
	if s == nil || s.Data == nil {
		return "", false
	}
	v, ok := s.Data[key].(string)
	return v, ok
}
