// Package verify proves from the client side that a datastore serves TLS
// with the certificate it was issued. Handshake does a real TLS handshake
// in the datastore's own protocol: PostgreSQL's SSLRequest, MySQL's and
// MariaDB's capability handshake (server greeting, SSL request packet,
// then TLS), plain TLS for MongoDB and Cassandra's native port, TLS and an
// HTTP GET for Manticore's https listener. Check adds what the agent
// reports on: the served chain verifies against the instance's CA and the
// served leaf is the issued one, by SHA-256 fingerprint.
//
// Nothing here authenticates or sends credentials: the connection is
// closed right after the handshake (after the GET for Manticore), so the
// datastore logs an aborted or incomplete connection, which is expected.
//
// What newcomers get wrong: a file on disk proves nothing, and neither does
// a handshake with a plain tls.Dial on a PostgreSQL or MySQL port (those
// speak plaintext first; the TLS upgrade is negotiated in their protocol).
// And the fingerprint, not the subject, is what identifies the issued
// certificate: a rotation keeps the subject and changes the serial and the
// fingerprint, so "the new serial is served" is the test of a reload.
package verify
