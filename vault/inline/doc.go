// Package inline is Trove's "inline" key-provider driver, for teams that
// run their own CA: it hands each instance the certificate, key and CA
// chain the team put in a directory, after checking them, and issues
// nothing itself.
//
// The directory holds one subdirectory per instance, named after it:
//
//	<dir>/orders-db/tls.crt   the leaf certificate, then any intermediates (PEM)
//	<dir>/orders-db/tls.key   its private key: PKCS #8, PKCS #1 or SEC 1 (PEM), mode 0600
//	<dir>/orders-db/ca.crt    the CA chain that issued it, root last (PEM)
//
// Every Issue reads the files afresh and refuses, with an error wrapping
// vault.ErrDenied that names the file and the fix, anything an instance
// could not serve TLS with: a key that does not match, a chain that does
// not verify, a host the certificate does not cover, a certificate that is
// expired, not yet valid or expiring within WithMinRemaining. Validate is
// that check on its own; package vault/href downloads the same files and
// runs it too.
//
// Use it when certificates come from a CA the reconciler cannot talk to
// (a corporate PKI, a manual process, cert-manager writing Kubernetes
// secrets into a mounted volume). Use vault/hashicorp or vault/local when
// the reconciler may issue certificates itself: they rotate on their own,
// this driver only passes on what it is given.
//
// What newcomers get wrong:
//
//   - Key file permissions. A key readable by group or others is refused.
//     Kubernetes mounts secret volumes with mode 0644 unless the volume
//     sets defaultMode: 0600 (or 0400).
//   - Two different CA files. Each instance's ca.crt is the chain that
//     issued that instance's certificate; CAChain, what clients of the
//     whole fleet trust, is the separate bundle given by WithCABundle.
//     Both must end with the root, not start with it.
//   - Rotation is the team's job. The request's TTL and key type are not
//     honoured and Revoke is unsupported: renew at the CA and replace the
//     files (write elsewhere, then rename, so a half-written file is never
//     read) before WithMinRemaining refuses them.
package inline
