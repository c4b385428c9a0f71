package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/vault/api"
	"github.com/spf13/cobra"

	"github.com/reconciler-dev/reconciler/vault/hashicorp"
)

func newVaultCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Work with HashiCorp Vault, the production key provider",
	}
	cmd.AddCommand(newVaultBootstrapCommand())
	return cmd
}

func newVaultBootstrapCommand() *cobra.Command {
	var (
		o        hashicorp.BootstrapOptions
		importCA string
	)
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Configure a Vault for the reconciler: PKI, transit, policy and AppRole",
		Long: `Configure a Vault for the reconciler in one idempotent command:

  - a PKI engine with a root CA (generated, or --import-ca) and two roles,
    EC P-256 and RSA 2048;
  - a transit engine with a derived key for per-instance RPC keys;
  - a least-privilege policy: issue and revoke with those roles, read the CA
    chain and CRL, use (never read or export) the transit key;
  - an AppRole bound to the policy: its role-id is printed, a new secret-id
    is written to --secret-id-file (mode 0600) unless the file exists.

What exists is kept, so running it again changes nothing. It needs an admin
token in VAULT_TOKEN; VAULT_ADDR, VAULT_CACERT and VAULT_NAMESPACE are read
as by the vault CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, ...
			if cfg.Error != nil {
				return fmt.Errorf("configure vault client: %w", cfg.Error)
			}
			client, err := api.NewClient(cfg)
			if err != nil {
				return fmt.Errorf("create vault client: %w", err)
			}
			if client.Token() == "" {
				return fmt.Errorf("bootstrap vault: set VAULT_TOKEN to an admin token (it is read from the environment only)")
			}
			if importCA != "" {
				if o.ImportCA, err = os.ReadFile(importCA); err != nil {
					return fmt.Errorf("read --import-ca: %w", err)
				}
			}
			res, err := hashicorp.Bootstrap(cmd.Context(), client, o)
			if err != nil {
				return fmt.Errorf("bootstrap vault at %s: %w", client.Address(), err)
			}
			out := cmd.OutOrStdout()
			if len(res.Changed) == 0 {
				fmt.Fprintln(out, "Vault is already configured; nothing changed.")
			}
			for _, c := range res.Changed {
				fmt.Fprintln(out, "✓", c)
			}
			fmt.Fprintf(out, "\nrole-id: %s\nsecret-id file: %s\n", res.RoleID, o.SecretIDFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.PKIMount, "pki-mount", "pki", "path of the PKI secrets engine")
	f.StringVar(&o.Role, "role", "reconciler", "PKI role for EC P-256 certificates")
	f.StringVar(&o.RSARole, "rsa-role", "reconciler-rsa", "PKI role for RSA 2048 certificates")
	f.StringVar(&o.TransitMount, "transit-mount", "transit", "path of the transit secrets engine")
	f.StringVar(&o.TransitKey, "transit-key", "reconciler", "transit key for per-instance RPC keys")
	f.StringVar(&o.AppRoleMount, "approle-mount", "approle", "path of the AppRole auth method")
	f.StringVar(&o.AppRoleName, "approle", "reconciler", "AppRole role name")
	f.StringVar(&o.PolicyName, "policy", "reconciler", "name of the policy to write")
	f.StringVar(&o.MaxTTL, "max-ttl", "8760h", "longest certificate lifetime the roles allow")
	f.StringVar(&o.CACommonName, "ca-common-name", "reconciler CA", "common name of a generated root CA")
	f.StringVar(&importCA, "import-ca", "", "PEM bundle (certificate and key) to use as the CA instead of generating one")
	f.StringVar(&o.SecretIDFile, "secret-id-file", "vault-secret-id", "where to write a new AppRole secret-id (0600), unless it exists")
	return cmd
}
