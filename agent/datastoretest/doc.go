// Package datastoretest starts private PostgreSQL and MariaDB servers for
// tests, the way net/http/httptest starts HTTP servers: each test gets its
// own data directory, a free loopback port, a private socket directory and
// an empty configuration directory already included by the server's main
// configuration (PostgreSQL's include_dir, MariaDB's !includedir), so an
// installer under test can drop files there and reload or restart.
//
// Servers run as their own system users (postgres, mysql), in their own
// process group, and are stopped by t.Cleanup; the whole group is killed
// if a clean shutdown takes too long. The binaries come from the Debian
// packages postgresql-15 and mariadb-server: without them the tests fail,
// they do not skip.
//
// What newcomers get wrong: the machine's own PostgreSQL and MariaDB also
// listen on 5432 and 3306, so never hard-code a port or use the default
// socket; and AdminDSN goes through the private Unix socket on purpose,
// because an installer that refuses plaintext TCP (hostnossl reject,
// require_secure_transport) must still be able to reload the server.
package datastoretest
