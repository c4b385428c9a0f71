package hashicorp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/vault/api"
)

// BootstrapOptions say how to configure a Vault for the reconciler. Zero
// names take the Config defaults.
type BootstrapOptions struct {
	PKIMount, Role, RSARole  string
	TransitMount, TransitKey string
	AppRoleMount             string // default "approle"
	AppRoleName              string // default "reconciler"
	PolicyName               string // default "reconciler"

	// CACommonName names a generated root CA (default "reconciler CA").
	CACommonName string
	// ImportCA is a PEM bundle (certificate and private key) to use as the
	// issuing CA instead of generating one.
	ImportCA []byte
	// MaxTTL caps certificate lifetimes (default "8760h").
	MaxTTL string
	// SecretIDFile receives a new AppRole secret-id (0600) if it does not
	// exist yet; an existing file is left alone.
	SecretIDFile string
}

// BootstrapResult says what Bootstrap did and how to log in.
type BootstrapResult struct {
	RoleID  string
	Changed []string // what this run created or updated, in order
}

// Bootstrap configures a Vault for the reconciler with an admin token: a
// PKI mount with a CA (generated, or imported) and two roles (EC P-256 and
// RSA 2048), a transit mount with a derived key, a least-privilege policy,
// and an AppRole bound to it. It is idempotent: what exists is kept, so a
// second run changes nothing and keeps the CA.
func Bootstrap(ctx context.Context, client *api.Client, o BootstrapOptions) (*BootstrapResult, error) {
	cfg := Config{PKIMount: o.PKIMount, Role: o.Role, RSARole: o.RSARole, TransitMount: o.TransitMount, TransitKey: o.TransitKey}
	cfg.setDefaults()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.AppRoleMount, "approle")
	def(&o.AppRoleName, "reconciler")
	def(&o.PolicyName, "reconciler")
	def(&o.CACommonName, "reconciler CA")
	def(&o.MaxTTL, "8760h")
	b := &bootstrap{ctx: ctx, api: client, res: &BootstrapResult{}}

	mounts, err := client.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list secrets engines: %w", err)
	}
	if err := b.mount(mounts, cfg.PKIMount, "pki", "87600h"); err != nil {
		return nil, err
	}
	if err := b.ca(cfg.PKIMount, o); err != nil {
		return nil, err
	}
	for role, keyType := range map[string]string{cfg.Role: "ec", cfg.RSARole: "rsa"} {
		if err := b.role(cfg.PKIMount, role, keyType, o.MaxTTL); err != nil {
			return nil, err
		}
	}
	if err := b.mount(mounts, cfg.TransitMount, "transit", ""); err != nil {
		return nil, err
	}
	if err := b.transitKey(cfg.TransitMount, cfg.TransitKey); err != nil {
		return nil, err
	}
	if err := b.policy(o.PolicyName, policyHCL(cfg)); err != nil {
		return nil, err
	}
	if err := b.appRole(o); err != nil {
		return nil, err
	}
	return b.res, nil
}

type bootstrap struct {
	ctx context.Context
	api *api.Client
	res *BootstrapResult
}

func (b *bootstrap) changed(what string) { b.res.Changed = append(b.res.Changed, what) }

func (b *bootstrap) mount(mounts map[string]*api.MountOutput, path, typ, maxTTL string) error {
	if m, ok := mounts[path+"/"]; ok {
		if m.Type != typ {
			return fmt.Errorf("mount %s: it is a %s engine, not %s: choose another mount path", path, m.Type, typ)
		}
		return nil
	}
	in := &api.MountInput{Type: typ}
	if maxTTL != "" {
		in.Config.MaxLeaseTTL = maxTTL
	}
	if err := b.api.Sys().MountWithContext(b.ctx, path, in); err != nil {
		return fmt.Errorf("enable %s engine at %s: %w", typ, path, err)
	}
	b.changed(fmt.Sprintf("enabled the %s engine at %s/", typ, path))
	return nil
}

func (b *bootstrap) ca(mount string, o BootstrapOptions) error {
	existing, err := b.api.Logical().ReadWithContext(b.ctx, mount+"/cert/ca")
	if err == nil && existing != nil {
		if pem, _ := field(existing, "certificate"); strings.TrimSpace(pem) != "" {
			return nil
		}
	}
	if len(o.ImportCA) > 0 {
		if _, err := b.api.Logical().WriteWithContext(b.ctx, mount+"/config/ca", map[string]any{"pem_bundle": string(o.ImportCA)}); err != nil {
			return fmt.Errorf("import CA into %s: %w", mount, err)
		}
		b.changed("imported the CA into " + mount + "/")
	} else {
		_, err := b.api.Logical().WriteWithContext(b.ctx, mount+"/root/generate/internal", map[string]any{
			"common_name": o.CACommonName, "key_type": "ec", "key_bits": 256, "ttl": "87600h",
		})
		if err != nil {
			return fmt.Errorf("generate root CA in %s: %w", mount, err)
		}
		b.changed("generated a root CA in " + mount + "/")
	}
	addr := strings.TrimSuffix(b.api.Address(), "/")
	_, err = b.api.Logical().WriteWithContext(b.ctx, mount+"/config/urls", map[string]any{
		"issuing_certificates":    addr + "/v1/" + mount + "/ca",
		"crl_distribution_points": addr + "/v1/" + mount + "/crl",
	})
	if err != nil {
		return fmt.Errorf("configure %s URLs: %w", mount, err)
	}
	return nil
}

func (b *bootstrap) role(mount, role, keyType, maxTTL string) error {
	bits := 256
	if keyType == "rsa" {
		bits = 2048
	}
	want := map[string]any{
		"allow_any_name":              true,
		"enforce_hostnames":           true,
		"allow_ip_sans":               true,
		"allow_localhost":             true,
		"allow_wildcard_certificates": false,
		"key_type":                    keyType,
		"key_bits":                    bits,
		"max_ttl":                     maxTTL,
		"server_flag":                 true,
		"client_flag":                 true,
		"no_store":                    false, // revocation needs the stored certificates
	}
	path := mount + "/roles/" + role
	if cur, err := b.api.Logical().ReadWithContext(b.ctx, path); err == nil && cur != nil && cur.Data["key_type"] == keyType {
		return nil
	}
	if _, err := b.api.Logical().WriteWithContext(b.ctx, path, want); err != nil {
		return fmt.Errorf("write PKI role %s: %w", path, err)
	}
	b.changed("wrote the PKI role " + path)
	return nil
}

func (b *bootstrap) transitKey(mount, key string) error {
	path := mount + "/keys/" + key
	cur, err := b.api.Logical().ReadWithContext(b.ctx, path)
	if err == nil && cur != nil {
		if derived, _ := cur.Data["derived"].(bool); !derived {
			return fmt.Errorf("transit key %s exists but is not derived: per-instance contexts would be ignored; create another key with derived=true and configure its name", path)
		}
		return nil
	}
	if _, err := b.api.Logical().WriteWithContext(b.ctx, path, map[string]any{"type": "aes256-gcm96", "derived": true}); err != nil {
		return fmt.Errorf("create transit key %s: %w", path, err)
	}
	b.changed("created the derived transit key " + path)
	return nil
}

// policyHCL is the least privilege the reconciler needs: issue and revoke
// with its roles, read the CA chain and CRL, and use (never read or
// export) its transit key.
func policyHCL(c Config) string {
	var b strings.Builder
	rule := func(path string, caps ...string) {
		fmt.Fprintf(&b, "path %q {\n  capabilities = [\"%s\"]\n}\n\n", path, strings.Join(caps, `", "`))
	}
	rule(c.PKIMount+"/issue/"+c.Role, "update")
	rule(c.PKIMount+"/issue/"+c.RSARole, "update")
	rule(c.PKIMount+"/revoke", "update")
	rule(c.PKIMount+"/cert/ca_chain", "read")
	rule(c.PKIMount+"/cert/crl", "read")
	rule(c.TransitMount+"/datakey/plaintext/"+c.TransitKey, "update")
	rule(c.TransitMount+"/decrypt/"+c.TransitKey, "update")
	rule(c.TransitMount+"/rewrap/"+c.TransitKey, "update")
	rule(c.TransitMount+"/keys/"+c.TransitKey+"/rotate", "update")
	return strings.TrimSuffix(b.String(), "\n")
}

func (b *bootstrap) policy(name, hcl string) error {
	cur, err := b.api.Sys().GetPolicyWithContext(b.ctx, name)
	if err == nil && strings.TrimSpace(cur) == strings.TrimSpace(hcl) {
		return nil
	}
	if err := b.api.Sys().PutPolicyWithContext(b.ctx, name, hcl); err != nil {
		return fmt.Errorf("write policy %s: %w", name, err)
	}
	b.changed("wrote the policy " + name)
	return nil
}

func (b *bootstrap) appRole(o BootstrapOptions) error {
	auths, err := b.api.Sys().ListAuthWithContext(b.ctx)
	if err != nil {
		return fmt.Errorf("list auth methods: %w", err)
	}
	if _, ok := auths[o.AppRoleMount+"/"]; !ok {
		if err := b.api.Sys().EnableAuthWithOptionsWithContext(b.ctx, o.AppRoleMount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
			return fmt.Errorf("enable AppRole at auth/%s: %w", o.AppRoleMount, err)
		}
		b.changed("enabled AppRole at auth/" + o.AppRoleMount)
	}
	path := "auth/" + o.AppRoleMount + "/role/" + o.AppRoleName
	if cur, err := b.api.Logical().ReadWithContext(b.ctx, path); err != nil || cur == nil {
		_, err := b.api.Logical().WriteWithContext(b.ctx, path, map[string]any{
			"token_policies": o.PolicyName,
			"token_ttl":      "1h",
			"token_max_ttl":  "24h",
		})
		if err != nil {
			return fmt.Errorf("write AppRole role %s: %w", path, err)
		}
		b.changed("wrote the AppRole role " + path)
	}
	id, err := b.api.Logical().ReadWithContext(b.ctx, path+"/role-id")
	if err != nil {
		return fmt.Errorf("read AppRole role-id: %w", err)
	}
	b.res.RoleID, _ = field(id, "role_id")
	if o.SecretIDFile == "" {
		return nil
	}
	if _, err := os.Stat(o.SecretIDFile); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check secret-id file: %w", err)
	}
	sec, err := b.api.Logical().WriteWithContext(b.ctx, path+"/secret-id", nil)
	if err != nil {
		return fmt.Errorf("generate AppRole secret-id: %w", err)
	}
	secretID, _ := field(sec, "secret_id")
	if err := writeSecretFile(o.SecretIDFile, secretID); err != nil {
		return err
	}
	b.changed("wrote a new secret-id to " + o.SecretIDFile)
	return nil
}

// writeSecretFile creates path with mode 0600 and content, atomically.
func writeSecretFile(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-id-*")
	if err != nil {
		return fmt.Errorf("write secret-id file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret-id file: %w", err)
	}
	if _, err := tmp.WriteString(content + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret-id file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret-id file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write secret-id file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write secret-id file: %w", err)
	}
	return nil
}
