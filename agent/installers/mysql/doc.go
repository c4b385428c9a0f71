// Package mysql turns client TLS on and off for MySQL and MariaDB (the
// flavour is the Datastore's Type, "mysql" or "mariadb").
//
// Install writes, in the datastore's ConfigDir (which the server's option
// files must include: !includedir /etc/mysql/conf.d, or Debian's
// mariadb.conf.d):
//
//   - reconciler-server-cert.pem: the leaf and its chain (0644, owned by
//     the datastore user)
//   - reconciler-server-key.pem: the private key (0600, owned by the
//     datastore user)
//   - reconciler-ca.pem: the CA chain (0644)
//   - reconciler-tls.cnf: a [mysqld] fragment with ssl_ca, ssl_cert,
//     ssl_key, tls_version (MySQL 5.7.10+, MariaDB 10.4.6+) and
//     require_secure_transport (MySQL 5.7.8+, MariaDB 10.5.2+); an option
//     the server does not know would stop it from starting, so each is
//     written only where it exists
//
// How it takes effect depends on the server:
//
//   - MySQL 8.0.16 and later: SET GLOBAL of the ssl_* paths and
//     tls_version, ALTER INSTANCE RELOAD TLS, then require_secure_transport
//     (Reloaded). SET GLOBAL rather than SET PERSIST, so the option file
//     stays the one source of truth across restarts.
//   - MariaDB 10.4 and later: ssl_cert, ssl_key, ssl_ca and tls_version
//     are read-only, and FLUSH SSL only re-reads the files at the paths
//     the server started with. So the first install (or a change of TLS
//     versions) is RestartRequired, or a restart with the RestartCommand
//     when AllowRestart; every later rotation writes the same paths and
//     is a FLUSH SSL (Reloaded). require_secure_transport is SET GLOBAL
//     from 10.5.2.
//   - Older servers: RestartRequired, or the RestartCommand.
//
// After a reload or restart it checks with a real capability handshake
// that the issued certificate is served. Any failure rolls the files back
// (modes and owners included), puts the previous state back (variables
// and reload, FLUSH SSL, or another restart) and returns the server's own
// message, such as "Failed to refresh SSL, error: Unable to get private
// key".
//
// Remove takes the files and the fragment out. MySQL 8.0.16+ reloads with
// TLS off; MariaDB allows plaintext at once (require_secure_transport =
// OFF) and stops serving TLS at its next restart (RestartRequired).
//
// What newcomers get wrong: on MariaDB, writing new files and running
// FLUSH SSL does nothing for a server started without TLS (have_ssl is
// DISABLED until a restart), and MariaDB 10.11 refuses a plaintext client
// under require_secure_transport with "Access denied" (1045), not with
// MySQL's 3159. AdminDSN should use the Unix socket, which counts as
// secure transport.
package mysql
