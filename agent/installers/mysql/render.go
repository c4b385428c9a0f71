package mysql

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Files the installer writes in the datastore's ConfigDir.
const (
	CAFile   = "reconciler-ca.pem"
	CertFile = "reconciler-server-cert.pem"
	KeyFile  = "reconciler-server-key.pem"
	ConfFile = "reconciler-tls.cnf"
)

// Flavours, as specs names the datastore types.
const (
	MySQL   = "mysql"
	MariaDB = "mariadb"
)

// Version is a server version: 8.0.36, 10.11.19.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "8.0.36", "10.11", "10.11.19-MariaDB-0+deb12u1" and
// MariaDB's replication-compatible "5.5.5-10.11.19-MariaDB".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimPrefix(s, "5.5.5-")
	if j := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); j >= 0 {
		s = s[:j]
	}
	parts := strings.Split(s, ".")
	var v Version
	for i, p := range []*int{&v.Major, &v.Minor, &v.Patch} {
		if i >= len(parts) {
			break
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return Version{}, fmt.Errorf("parse version %q: want major.minor[.patch]", s)
		}
		*p = n
	}
	if v.Major == 0 {
		return Version{}, fmt.Errorf("parse version %q: want major.minor[.patch]", s)
	}
	return v, nil
}

// AtLeast reports whether v is major.minor.patch or later.
func (v Version) AtLeast(major, minor, patch int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Server is what the rendering depends on: the flavour and version.
type Server struct {
	Flavour string // MySQL or MariaDB
	Version Version
}

// hasRequireSecureTransport: MySQL 5.7.8, MariaDB 10.5.2. An option file
// naming a variable the server does not know stops it from starting.
func (s Server) hasRequireSecureTransport() bool {
	if s.Flavour == MariaDB {
		return s.Version.AtLeast(10, 5, 2)
	}
	return s.Version.AtLeast(5, 7, 8)
}

// hasTLSVersion: MySQL 5.7.10, MariaDB 10.4.6.
func (s Server) hasTLSVersion() bool {
	if s.Flavour == MariaDB {
		return s.Version.AtLeast(10, 4, 6)
	}
	return s.Version.AtLeast(5, 7, 10)
}

// canReloadTLS: MySQL's ALTER INSTANCE RELOAD TLS with dynamic ssl_*
// variables (8.0.16), MariaDB's FLUSH SSL of the same paths (10.4).
func (s Server) canReloadTLS() bool {
	if s.Flavour == MariaDB {
		return s.Version.AtLeast(10, 4, 0)
	}
	return s.Version.AtLeast(8, 0, 16)
}

// tlsVersions maps a bundle's MinVersion to tls_version.
func tlsVersions(min string) (string, error) {
	switch min {
	case "", "1.2":
		return "TLSv1.2,TLSv1.3", nil
	case "1.3":
		return "TLSv1.3", nil
	default:
		return "", fmt.Errorf("TLS minimum version %q: want 1.2 or 1.3", min)
	}
}

// Settings are the TLS variables the installer manages.
type Settings struct {
	CA, Cert, Key          string // paths
	TLSVersion             string // "" when the server has no tls_version
	RequireSecureTransport *bool  // nil when the server has no such variable
}

// settings are the values for files in dir.
func (s Server) settings(dir, minVersion string, require bool) (Settings, error) {
	v, err := tlsVersions(minVersion)
	if err != nil {
		return Settings{}, err
	}
	out := Settings{CA: filepath.Join(dir, CAFile), Cert: filepath.Join(dir, CertFile), Key: filepath.Join(dir, KeyFile)}
	if s.hasTLSVersion() {
		out.TLSVersion = v
		// MySQL names TLSv1.3 in tls_version from 8.0.16 and 5.7.28 on;
		// an unknown value stops the server from starting.
		if s.Flavour == MySQL && !s.Version.AtLeast(8, 0, 16) && !(s.Version.Major == 5 && s.Version.AtLeast(5, 7, 28)) {
			if v == "TLSv1.3" {
				return Settings{}, fmt.Errorf("TLS 1.3 minimum: MySQL %s has no TLS 1.3", s.Version)
			}
			out.TLSVersion = "TLSv1.2"
		}
	}
	if s.hasRequireSecureTransport() {
		out.RequireSecureTransport = &require
	}
	return out, nil
}

// RenderOptions renders the option file fragment.
func RenderOptions(st Settings) []byte {
	var b bytes.Buffer
	b.WriteString("# Managed by the reconciler agent: TLS for client connections.\n")
	b.WriteString("# Rewritten on every certificate change; edits are lost.\n")
	b.WriteString("[mysqld]\n")
	fmt.Fprintf(&b, "ssl_ca = %s\n", st.CA)
	fmt.Fprintf(&b, "ssl_cert = %s\n", st.Cert)
	fmt.Fprintf(&b, "ssl_key = %s\n", st.Key)
	if st.TLSVersion != "" {
		fmt.Fprintf(&b, "tls_version = %s\n", st.TLSVersion)
	}
	if st.RequireSecureTransport != nil {
		fmt.Fprintf(&b, "require_secure_transport = %s\n", onOff(*st.RequireSecureTransport))
	}
	return b.Bytes()
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// sqlString quotes s as a string literal in either flavour's default
// SQL mode.
func sqlString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

// MySQLInstallStatements are what MySQL 8.0.16 and later run to take st
// live: the variables (SET GLOBAL: the option file keeps them across
// restarts, and SET PERSIST would override it), then the reload. If the
// reload fails, MySQL keeps the TLS context it had.
func MySQLInstallStatements(st Settings) []string {
	out := []string{
		"SET GLOBAL ssl_ca = " + sqlString(st.CA),
		"SET GLOBAL ssl_cert = " + sqlString(st.Cert),
		"SET GLOBAL ssl_key = " + sqlString(st.Key),
	}
	if st.TLSVersion != "" {
		out = append(out, "SET GLOBAL tls_version = "+sqlString(st.TLSVersion))
	}
	out = append(out, "ALTER INSTANCE RELOAD TLS")
	if st.RequireSecureTransport != nil {
		// After the reload: never refuse plaintext before TLS works.
		out = append(out, "SET GLOBAL require_secure_transport = "+onOff(*st.RequireSecureTransport))
	}
	return out
}

// MySQLRemoveStatements turn client TLS off on MySQL 8.0.16 and later:
// plaintext allowed first, then the paths back to their defaults and a
// reload that, without certificates, leaves TLS disabled.
func MySQLRemoveStatements() []string {
	return []string{
		"SET GLOBAL require_secure_transport = OFF",
		"SET GLOBAL ssl_ca = DEFAULT",
		"SET GLOBAL ssl_cert = DEFAULT",
		"SET GLOBAL ssl_key = DEFAULT",
		"SET GLOBAL tls_version = DEFAULT",
		"ALTER INSTANCE RELOAD TLS NO ROLLBACK ON ERROR",
	}
}
