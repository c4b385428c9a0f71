// Package vault is the key provider contract: where every certificate and
// every per-instance RPC key the reconciler hands out comes from.
//
// Two small interfaces split the work. An Issuer gives an instance its TLS
// certificate (and revokes it); a KeyWrapper makes the per-instance RPC
// keys and keeps them safe to store, wrapped under a master key the
// reconciler never holds in clear. Implementations live in subpackages:
//
//   - vault/hashicorp: HashiCorp Vault, PKI for certificates and transit
//     for RPC keys (production).
//   - vault/local: the embedded default, a CA and a keyring kept in the
//     state directory, encrypted under a key-encryption key read from a
//     file or the environment (laptops, the quickstart, tests).
//   - vault/inline, vault/href, vault/none: Trove's drivers for teams that
//     run their own CA (certificates only).
//
// vault/vaulttest is the contract test suite every implementation runs.
//
// What newcomers get wrong: secret material (private keys, plaintext RPC
// keys, tokens) travels only as Secret, whose String, LogValue and
// MarshalJSON never show the bytes; never convert it to a string to log it
// or wrap it into an error. Trove printed keys in debug logs.
package vault
