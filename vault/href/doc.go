// Package href is Trove's "href" key-provider driver, for teams that run
// their own CA and publish its certificates over HTTPS: it downloads each
// instance's tls.crt, tls.key and ca.crt from URL templates, checks them
// exactly as package vault/inline checks files on disk (inline.Validate),
// and issues nothing itself.
//
//	href.WithURLs(
//		"https://certs.example/pki/{instance}/tls.crt",
//		"https://certs.example/pki/{instance}/tls.key",
//		"https://certs.example/pki/{instance}/ca.crt")
//
// Every download is HTTPS, against WithRootCAs or the system's roots,
// bounded in size (WithMaxSize) and time (WithTimeout and the context).
// The key download alone carries the bearer token and presents the client
// certificate, so a certificate store that serves certificates to anyone
// can still guard keys. Use it when certificates live in a store the
// reconciler can reach but not write: a secrets service with an HTTP API,
// an object store with presigned URLs, an internal PKI portal.
//
// What newcomers get wrong:
//
//   - The ca.crt URL and the fleet CA. When the ca.crt URL holds
//     {instance}, each instance may have its own CA, and CAChain, what
//     clients of the whole fleet trust, needs WithCABundle or
//     WithCABundleURL; when it holds no {instance}, it is the fleet's.
//   - Reading errors for secrets. Errors show URLs without their query, so
//     a presigned URL's signature stays out of logs, and never show an
//     answer's body, which for a key URL may be the key. A refused or
//     failing download is diagnosed by its status alone: look at the
//     server's logs for the rest.
//   - Retrying. 4xx answers, untrusted servers and files that fail the
//     checks wrap vault.ErrDenied: the configuration or the files must
//     change. Timeouts, connection errors and 5xx answers do not, and a
//     later reconcile may succeed.
package href
