package vault

import (
	"fmt"
	"slices"
	"strings"
)

// Registry holds the configured issuers by provider name ("vault",
// "local", "inline", "href", "none"). The fleet's default provider is
// applied to instances by specs.Defaults, so every instance names its
// provider in spec.tls.provider; the registry turns that name into the
// issuer.
type Registry map[string]Issuer

// Issuer returns the issuer configured under name, or an error that lists
// the configured ones.
func (r Registry) Issuer(name string) (Issuer, error) {
	if iss, ok := r[name]; ok {
		return iss, nil
	}
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("choose key provider: %w: provider %q is not configured (configured: %s); configure it in the reconciler config or set spec.tls.provider to one of those",
		ErrDenied, name, strings.Join(names, ", "))
}
