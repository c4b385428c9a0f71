// Package postgresql turns client TLS on and off for a PostgreSQL server.
//
// Install writes, in the datastore's ConfigDir (which postgresql.conf must
// include with include_dir; Debian's conf.d is one):
//
//   - reconciler-server.crt: the leaf and its chain (0644, owned by the
//     datastore user)
//   - reconciler-server.key: the private key (0600, owned by the
//     datastore user, as PostgreSQL insists)
//   - reconciler-ca.crt: the CA chain (0644)
//   - reconciler-tls.conf: ssl = on, ssl_cert_file, ssl_key_file,
//     ssl_ca_file and ssl_min_protocol_version (12 and later)
//
// and, when the bundle requires secure transport, a managed block at the
// top of pg_hba.conf (between "# BEGIN reconciler" and "# END reconciler")
// with "hostnossl all all 0.0.0.0/0 reject" and the same for ::/0, so
// plaintext TCP is refused before any other rule can accept it; Unix
// socket (local) lines are untouched.
//
// It applies the change with a reload (pg_reload_conf() over AdminDSN, or
// the ReloadCommand): PostgreSQL 10 and later reload their SSL context on
// SIGHUP. Before reloading it asks the server to parse the new files
// (pg_file_settings, pg_hba_file_rules) and rolls back on any error,
// returning PostgreSQL's own message; after reloading it waits until the
// postmaster has loaded the configuration and checks, with a real
// SSLRequest handshake, that the issued certificate is the one served.
// PostgreSQL keeps its old SSL context when the new one fails to load
// ("SSL configuration was not reloaded" in its log), so that check is the
// only way to see a key the server cannot read; on failure the files are
// rolled back and the server reloaded again. Servers before 10 need a
// restart: RestartRequired, or the RestartCommand when AllowRestart.
//
// Remove takes the files, the fragment and the managed block out and
// reloads: SSL falls back to whatever postgresql.conf says (off by
// default).
//
// What newcomers get wrong: AdminDSN must not go over TCP without TLS
// (use the Unix socket: host=/var/run/postgresql), or the hostnossl rule
// locks the agent out of its own reloads; and a successful
// pg_reload_conf() only means the signal was sent.
package postgresql
