// Package mongodb is the MongoDB installer: it turns TLS on and off for
// one mongod (MongoDB 4.2 and later, which have net.tls).
//
// What it writes, where. In the TLS directory (the datastore's ConfigDir
// unless WithTLSDir says otherwise): reconciler-mongod.pem, the PKCS #8
// key followed by the certificate and its chain (net.tls.certificateKeyFile
// wants key and certificate in one file), 0600 and owned by the datastore
// user; and reconciler-ca.pem, the chain (net.tls.CAFile), 0644. In
// mongod.conf (ConfigDir/mongod.conf unless WithConfigFile says
// otherwise), a managed block in place of net.tls:
//
//	net:
//	  port: 27017
//	  # BEGIN reconciler net.tls
//	  # Managed by the reconciler agent. ...
//	  #|   tls:              <- what was there before, kept as comments
//	  #|     mode: disabled
//	  tls:
//	    mode: requireTLS      (preferTLS unless RequireSecureTransport)
//	    certificateKeyFile: ".../reconciler-mongod.pem"
//	    CAFile: ".../reconciler-ca.pem"
//	    allowConnectionsWithoutCertificates: true
//	    disabledProtocols: TLS1_0,TLS1_1   (and TLS1_2 when MinVersion is 1.3)
//	  # END reconciler net.tls
//
// Why a block in mongod.conf: mongod reads one configuration file and has
// no include directive. A separate agent-owned file given with --config
// would have to repeat the operator's whole configuration and change the
// service definition; a YAML decode and re-encode would reflow the file
// and lose its comments. The block is found and replaced by its lines, so
// everything outside it stays byte for byte, and Remove puts back the
// lines it replaced from the "#| " comments: no state outside the file,
// so it survives agent restarts and operator edits elsewhere in the file.
// The rendered options are checked, in the tests, against MongoDB's
// documented configuration-file options (testdata/documented-options.txt).
//
// Outcomes. Turning TLS on or off, or changing its options, needs a
// restart: Restarted when the datastore allows restarts
// (ds.AllowRestart with ds.RestartCommand), otherwise RestartRequired.
// Rotating the certificate while TLS is on keeps mongod.conf as it is
// and, on MongoDB 5.0 and later with a ds.ReloadCommand, runs it (a mongosh
// invocation of db.adminCommand({rotateCertificates: 1}), configured by
// the operator; the agent has no MongoDB driver) and reports Reloaded;
// without one, or before 5.0, the rotation needs a restart. A failed
// command rolls every file back and the error carries the end of the
// command's standard error, with key material cut out. Installing the
// same bundle twice changes nothing and reports the first call's outcome.
//
// What newcomers get wrong:
//
//   - A CAFile alone makes mongod demand a certificate from every client.
//     The bundle is the server's identity, so the block sets
//     allowConnectionsWithoutCertificates: true.
//   - net.ssl and net.tls are aliases that mongod refuses together: a
//     mongod.conf with net.ssl is refused with the line to remove.
//   - rotateCertificates re-reads the files named in the configuration and
//     needs the new files at the same paths; it cannot turn TLS on, which
//     is why only a rotation may use it.
package mongodb
