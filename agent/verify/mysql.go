package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// Capability flags of the MySQL client/server protocol (MariaDB keeps
// the same low 32 bits).
const (
	clientLongPassword     = 0x00000001
	clientLongFlag         = 0x00000004
	clientProtocol41       = 0x00000200
	clientSSL              = 0x00000800
	clientTransactions     = 0x00002000
	clientSecureConnection = 0x00008000
	clientPluginAuth       = 0x00080000
)

// maxGreeting bounds the server's first packet: real greetings are under
// a hundred bytes, and a peer that is not MySQL must not make us allocate
// 16 MiB.
const maxGreeting = 4096

// greeting is what the handshake needs of the server's initial handshake
// packet (protocol version 10).
type greeting struct {
	ServerVersion string
	ConnectionID  uint32
	Capabilities  uint32
	Charset       byte
}

// ServerError is an ERR packet the server sent instead of its greeting
// (too many connections, host blocked, ...): it is a MySQL server, but it
// refused the connection.
type ServerError struct {
	Code    uint16
	Message string
}

func (e *ServerError) Error() string { return fmt.Sprintf("server error %d: %s", e.Code, e.Message) }

// parseGreeting decodes the initial handshake packet's payload.
func parseGreeting(p []byte) (*greeting, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("parse greeting: empty packet: %w", ErrNotDatastore)
	}
	if p[0] == 0xff {
		if len(p) < 3 {
			return nil, fmt.Errorf("parse greeting: short error packet: %w", ErrNotDatastore)
		}
		e := &ServerError{Code: binary.LittleEndian.Uint16(p[1:3])}
		msg := p[3:]
		if len(msg) >= 6 && msg[0] == '#' {
			msg = msg[6:] // SQL state
		}
		e.Message = string(msg)
		return nil, fmt.Errorf("parse greeting: %w", e)
	}
	if p[0] != 10 {
		return nil, fmt.Errorf("parse greeting: protocol version %d, want 10: %w", p[0], ErrNotDatastore)
	}
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 {
		return nil, fmt.Errorf("parse greeting: unterminated server version: %w", ErrNotDatastore)
	}
	g := &greeting{ServerVersion: string(p[1 : 1+end])}
	rest := p[1+end+1:]
	// connection id (4), auth data part 1 (8), filler (1), capabilities (2)
	if len(rest) < 15 {
		return nil, fmt.Errorf("parse greeting: packet ends after the server version: %w", ErrNotDatastore)
	}
	g.ConnectionID = binary.LittleEndian.Uint32(rest[0:4])
	g.Capabilities = uint32(binary.LittleEndian.Uint16(rest[13:15]))
	rest = rest[15:]
	// charset (1), status (2), capabilities, upper half (2)
	if len(rest) >= 5 {
		g.Charset = rest[0]
		g.Capabilities |= uint32(binary.LittleEndian.Uint16(rest[3:5])) << 16
	}
	return g, nil
}

// readPacket reads one protocol packet: a 3-byte little-endian length, a
// sequence number, the payload.
func readPacket(r io.Reader, limit int) (payload []byte, seq byte, err error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, 0, fmt.Errorf("read packet header: %w", err)
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	if n > limit {
		return nil, 0, fmt.Errorf("read packet: %d bytes, more than %d: %w", n, limit, ErrNotDatastore)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, 0, fmt.Errorf("read packet: %w", err)
	}
	return payload, h[3], nil
}

// sslRequest is the 32-byte packet a client sends instead of its
// handshake response to switch to TLS (HandshakeResponse41 cut after the
// filler), with its header.
func sslRequest(g *greeting, seq byte) []byte {
	caps := uint32(clientSSL | clientProtocol41 | clientLongPassword | clientSecureConnection)
	caps |= g.Capabilities & (clientLongFlag | clientTransactions | clientPluginAuth)
	charset := g.Charset
	if charset == 0 {
		charset = 33 // utf8_general_ci
	}
	p := make([]byte, 4+32)
	p[0], p[1], p[2], p[3] = 32, 0, 0, seq
	binary.LittleEndian.PutUint32(p[4:8], caps)
	binary.LittleEndian.PutUint32(p[8:12], 1<<24) // max packet size
	p[12] = charset
	return p // 23 bytes of filler stay zero
}

func mysqlUpgrade(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	payload, seq, err := readPacket(conn, maxGreeting)
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", hungUp(err))
	}
	g, err := parseGreeting(payload)
	if err != nil {
		return nil, err
	}
	if g.Capabilities&clientSSL == 0 {
		return nil, fmt.Errorf("server %s does not offer CLIENT_SSL: %w", g.ServerVersion, ErrSSLOff)
	}
	if g.Capabilities&clientProtocol41 == 0 {
		return nil, fmt.Errorf("server %s speaks the pre-4.1 protocol: %w", g.ServerVersion, ErrNotDatastore)
	}
	if _, err := conn.Write(sslRequest(g, seq+1)); err != nil {
		return nil, fmt.Errorf("send SSL request: %w", err)
	}
	return startTLS(ctx, conn, cfg)
}
