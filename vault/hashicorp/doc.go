// Package hashicorp is the HashiCorp Vault key provider: certificates from
// a PKI secrets engine, per-instance RPC keys from a transit engine.
//
// The reconciler never holds a long-lived secret in clear: transit hands
// out data keys with their plaintext once, for delivery to the agent, and
// a ciphertext bound to the instance (a derived key, the instance name as
// context) that is safe to store and that only Vault can open again.
//
// Client authenticates with a token or AppRole (secret-id read from a
// file), renews its token with the API's lifetime watcher and logs in
// again when renewal ends. Every request is retried with exponential
// backoff and jitter on connection errors, 5xx, 429 and sealed or standby
// answers; a 4xx that cannot succeed is not retried and comes back as an
// error wrapping vault.ErrDenied that names the path and the permission
// to grant. Bootstrap configures a fresh Vault for all of this.
//
// What newcomers get wrong: the transit key must be created with
// derived=true (Bootstrap does), or the instance context is ignored and a
// key wrapped for one instance opens for any; and PKI roles fix the key
// type, so RSA certificates come from a second role.
package hashicorp
