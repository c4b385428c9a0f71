// Package api is the daemon's HTTP API: the bearer tokens and roles that
// guard it, and the listener that serves it over HTTPS.
//
// Tokens are read from files named in the configuration (never from the
// configuration itself) and kept only as SHA-256 digests; a request's
// token is hashed and compared in constant time against every digest, so
// neither the comparison's time nor a memory dump of the daemon gives a
// token away. Two roles: viewer reads, admin also acts and sees the
// admin-only fields (Trove's encrypted_rpc_messaging). A missing or wrong
// token is 401, a viewer calling an admin route 403.
//
// Served over HTTPS, a plain-HTTP request to the port gets 400 (Go's TLS
// server answers a request that is not a TLS handshake that way), never
// a redirect that would invite clients to send tokens in clear.
package api
