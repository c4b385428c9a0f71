// Package cassandra is the Cassandra installer: it turns client-to-node
// TLS (client_encryption_options, the native transport port) on and off
// for one node of Cassandra 4.0 or later.
//
// What it writes, where, by version. In the TLS directory (ConfigDir
// unless WithTLSDir says otherwise), owned by the datastore user:
//
//   - 4.1 and later: reconciler-keystore.pem (the PKCS #8 key, then the
//     certificate and chain; 0600) and reconciler-truststore.pem (the
//     chain; 0644), read through
//     org.apache.cassandra.security.PEMBasedSslContextFactory. The key is
//     not encrypted: the file is 0600 and owned by Cassandra's user, and a
//     password beside it in cassandra.yaml would protect nothing more.
//   - 4.0: reconciler-keystore.p12 (0600) and reconciler-truststore.p12
//     (0644), PKCS #12 encrypted with AES-256 (go-pkcs12's Modern2023; Java
//     12 and later, or the 8u301 and 11.0.12 updates, read it), under a
//     random 256-bit password kept in reconciler-keystore.pass (0600) so
//     that a rotation reuses it. Cassandra 4.0 takes store passwords only
//     from cassandra.yaml, so the password is there too; the installer
//     warns when cassandra.yaml is world-readable.
//
// In cassandra.yaml (ConfigDir/cassandra.yaml unless WithConfigFile says
// otherwise) the top-level client_encryption_options entry is replaced by
// a managed block between "# BEGIN reconciler client_encryption_options"
// and "# END ..." markers, the replaced lines kept in it as "#| " comments
// and put back byte for byte by Remove. The entry sets enabled, optional
// (false when RequireSecureTransport), the stores, require_client_auth:
// false and accepted_protocols from MinVersion; the tests check every
// option against the documented lists in testdata/.
// server_encryption_options (internode) is left alone: it has to change
// on every node of a cluster in step, which one node's agent cannot do.
//
// Outcomes. Turning TLS on or off, or changing its options, needs a
// restart: Restarted when the datastore allows restarts, otherwise
// RestartRequired. A rotation only rewrites the stores, at the same paths:
// Cassandra 4.0 and later check them every 10 minutes and reload them, so
// the result is Reloaded, saying so; with ds.ReloadCommand set (for
// example nodetool reloadssl) it is run to apply the new certificate at
// once. A failed command rolls every file back and the error carries the
// end of its standard error, with keys and passwords cut out.
//
// What newcomers get wrong:
//
//   - Cassandra refuses to start on an option it does not know, so the
//     4.1 ssl_context_factory must never reach a 4.0 node (nor
//     accepted_protocols a 3.x one, which is why 3.x is refused).
//   - PEMBasedSslContextFactory reads PKCS #8 keys only; an "RSA PRIVATE
//     KEY" or "EC PRIVATE KEY" PEM is converted before it is written.
//   - PKCS #12 encoding is randomised: re-encoding the same key would look
//     like a change and restart the node. Stores that already hold the
//     bundle are kept as they are.
//   - After Remove, until the restart, Cassandra logs failed store reloads:
//     its stores are gone but its configuration still names them.
package cassandra
