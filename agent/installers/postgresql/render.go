package postgresql

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
)

// Files the installer writes in the datastore's ConfigDir.
const (
	CertFile = "reconciler-server.crt"
	KeyFile  = "reconciler-server.key"
	CAFile   = "reconciler-ca.crt"
	ConfFile = "reconciler-tls.conf"
)

// Delimiters of the managed block in pg_hba.conf.
const (
	BeginMarker = "# BEGIN reconciler"
	EndMarker   = "# END reconciler"
)

// protocolVersion maps a bundle's MinVersion to ssl_min_protocol_version.
func protocolVersion(min string) (string, error) {
	switch min {
	case "", "1.2":
		return "TLSv1.2", nil
	case "1.3":
		return "TLSv1.3", nil
	default:
		return "", fmt.Errorf("TLS minimum version %q: want 1.2 or 1.3", min)
	}
}

// RenderConf renders the configuration fragment for files in dir.
// ssl_min_protocol_version exists from PostgreSQL 12; major below that
// leaves it out.
func RenderConf(dir, minVersion string, major int) ([]byte, error) {
	proto, err := protocolVersion(minVersion)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", ConfFile, err)
	}
	var b bytes.Buffer
	b.WriteString("# Managed by the reconciler agent: TLS for client connections.\n")
	b.WriteString("# Rewritten on every certificate change; edits are lost.\n")
	fmt.Fprintf(&b, "ssl = on\n")
	fmt.Fprintf(&b, "ssl_cert_file = %s\n", quote(filepath.Join(dir, CertFile)))
	fmt.Fprintf(&b, "ssl_key_file = %s\n", quote(filepath.Join(dir, KeyFile)))
	fmt.Fprintf(&b, "ssl_ca_file = %s\n", quote(filepath.Join(dir, CAFile)))
	if major >= 12 {
		fmt.Fprintf(&b, "ssl_min_protocol_version = %s\n", quote(proto))
	}
	return b.Bytes(), nil
}

// quote writes a postgresql.conf string literal.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// hbaBlock is the managed block that refuses plaintext TCP.
const hbaBlock = BeginMarker + ": refuse client connections without TLS. Managed by the reconciler agent.\n" +
	"hostnossl all all 0.0.0.0/0 reject\n" +
	"hostnossl all all ::/0 reject\n" +
	EndMarker + "\n"

// RenderHBA returns hba (a pg_hba.conf) with the managed block removed
// and, when require is set, put back at the top, where PostgreSQL reads
// it first. A block that begins and never ends is an error: guessing
// where it ends could drop the operator's rules.
func RenderHBA(hba []byte, require bool) ([]byte, error) {
	var out bytes.Buffer
	if require {
		out.WriteString(hbaBlock)
	}
	inBlock := false
	for _, line := range strings.SplitAfter(string(hba), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, BeginMarker):
			inBlock = true
		case inBlock && strings.HasPrefix(trimmed, EndMarker):
			inBlock = false
		case !inBlock:
			out.WriteString(line)
		}
	}
	if inBlock {
		return nil, fmt.Errorf("render pg_hba.conf: %q without %q: fix the file by hand", BeginMarker, EndMarker)
	}
	return out.Bytes(), nil
}
