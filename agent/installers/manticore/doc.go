// Package manticore is the Manticore Search installer: it turns HTTPS on
// and off for one searchd.
//
// What it writes, where. In the TLS directory (ConfigDir unless
// WithTLSDir says otherwise), owned by the datastore user:
// reconciler-key.pem (0600), reconciler-cert.pem (the certificate then its
// chain) and reconciler-ca.pem (0644). In manticore.conf (ConfigDir
// unless WithConfigFile says otherwise), a managed block at the end of the
// searchd section, just before its closing brace:
//
//	searchd {
//	    listen = 127.0.0.1:9306:mysql
//	    # BEGIN reconciler searchd
//	    # Managed by the reconciler agent: ...
//	    ssl_ca = .../reconciler-ca.pem
//	    ssl_cert = .../reconciler-cert.pem
//	    ssl_key = .../reconciler-key.pem
//	    listen = 9443:https
//	    # END reconciler searchd
//	}
//
// These are the directives of Manticore's SSL page (ssl_cert and ssl_key,
// ssl_ca, and "at least one listener set to https"); the tests check them
// against testdata/documented-options.txt. The listener is the
// datastore's Port, or WithListen's "[host:]port". Nothing outside the
// block changes, so Remove leaves the file byte for byte as it was.
//
// Outcomes. searchd reads its configuration and certificates when it
// starts, so every change, a rotation included, needs a restart: Restarted
// when the datastore allows restarts (ds.AllowRestart and
// ds.RestartCommand), otherwise RestartRequired. A failed restart rolls
// every file back and the error carries searchd's own message, with key
// material cut out.
//
// What newcomers get wrong:
//
//   - Manticore has no setting for the minimum TLS version, and cannot
//     refuse plaintext on its http and mysql listeners; the result's
//     message says so when the bundle asks for either, rather than
//     pretending. Requiring TLS means removing the plain listeners.
//   - The binary API and replication are never encrypted by these
//     settings (the SSL page's caveat): only HTTP and MySQL clients are.
//   - A second ssl_cert outside the block, or a listener already on the
//     HTTPS port, would silently fight the block: both are refused with
//     the line to fix.
package manticore
