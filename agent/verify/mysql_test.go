package verify

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mariadbGreeting is a MariaDB 10.11 initial handshake packet's payload,
// shaped as the server sends it (auth data zeroed).
func mariadbGreeting(capsLow, capsHigh uint16) []byte {
	p := []byte{10}
	p = append(p, "5.5.5-10.11.19-MariaDB-0+deb12u1"...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, 7) // connection id
	p = append(p, make([]byte, 8)...)          // auth data part 1
	p = append(p, 0)                           // filler
	p = binary.LittleEndian.AppendUint16(p, capsLow)
	p = append(p, 45)                          // utf8mb4_general_ci
	p = binary.LittleEndian.AppendUint16(p, 2) // status: autocommit
	p = binary.LittleEndian.AppendUint16(p, capsHigh)
	p = append(p, 21)                  // auth data length
	p = append(p, make([]byte, 10)...) // reserved, MariaDB's extended capabilities
	p = append(p, make([]byte, 13)...) // auth data part 2
	p = append(p, "mysql_native_password\x00"...)
	return p
}

func TestParseGreeting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    *greeting
		wantErr error
	}{
		{name: "MariaDB with SSL", payload: mariadbGreeting(0xfffe, 0x81ff),
			want: &greeting{ServerVersion: "5.5.5-10.11.19-MariaDB-0+deb12u1", ConnectionID: 7, Capabilities: 0x81fffffe, Charset: 45}},
		{name: "MariaDB without SSL", payload: mariadbGreeting(0xf7fe, 0x81ff),
			want: &greeting{ServerVersion: "5.5.5-10.11.19-MariaDB-0+deb12u1", ConnectionID: 7, Capabilities: 0x81fff7fe, Charset: 45}},
		{name: "short 4.0-style greeting keeps the low capabilities", payload: mariadbGreeting(0x0a00, 0)[:1+33+15],
			want: &greeting{ServerVersion: "5.5.5-10.11.19-MariaDB-0+deb12u1", ConnectionID: 7, Capabilities: 0x0a00}},
		{name: "error packet instead of a greeting", payload: append([]byte{0xff, 0x10, 0x04}, "Too many connections"...),
			wantErr: &ServerError{Code: 1040, Message: "Too many connections"}},
		{name: "error packet with SQL state", payload: append([]byte{0xff, 0x69, 0x04}, "#HY000Host '10.0.0.1' is blocked"...),
			wantErr: &ServerError{Code: 1129, Message: "Host '10.0.0.1' is blocked"}},
		{name: "protocol 9", payload: []byte{9, 'x', 0}, wantErr: ErrNotDatastore},
		{name: "empty", payload: nil, wantErr: ErrNotDatastore},
		{name: "unterminated version", payload: []byte{10, '8', '.', '0'}, wantErr: ErrNotDatastore},
		{name: "cut after the version", payload: []byte{10, '8', 0, 1, 2, 3}, wantErr: ErrNotDatastore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGreeting(tc.payload)
			if tc.wantErr != nil {
				var se *ServerError
				if want, ok := tc.wantErr.(*ServerError); ok {
					if !errors.As(err, &se) {
						t.Fatalf("error %v, want a *ServerError", err)
					}
					if diff := cmp.Diff(want, se); diff != "" {
						t.Errorf("server error (-want +got):\n%s", diff)
					}
					return
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("greeting (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSSLRequestPacket(t *testing.T) {
	got := sslRequest(&greeting{Capabilities: 0x81fffffe, Charset: 45}, 1)
	want := []byte{
		32, 0, 0, 1, // length 32, sequence 1
		0x05, 0xaa, 0x08, 0x00, // LONG_PASSWORD|LONG_FLAG|PROTOCOL_41|SSL|TRANSACTIONS|SECURE_CONNECTION|PLUGIN_AUTH
		0, 0, 0, 1, // max packet 16 MiB
		45,
	}
	want = append(want, make([]byte, 23)...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SSL request (-want +got):\n%s", diff)
	}
}

func FuzzParseGreeting(f *testing.F) {
	f.Add(mariadbGreeting(0xfffe, 0x81ff))
	f.Add(mariadbGreeting(0xf7fe, 0x81ff)[:40])
	f.Add([]byte{0xff, 0x10, 0x04, '#', 'H', 'Y', '0', '0', '0', 'x'})
	f.Add([]byte{10, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		g, err := parseGreeting(p)
		if (g == nil) == (err == nil) {
			t.Fatalf("greeting %v and error %v: want exactly one", g, err)
		}
		if err != nil {
			return
		}
		if p[0] != 10 || len(g.ServerVersion) >= len(p) {
			t.Fatalf("accepted %x as %+v", p, g)
		}
		req := sslRequest(g, 1)
		if len(req) != 36 || binary.LittleEndian.Uint32(req[4:8])&clientSSL == 0 {
			t.Fatalf("SSL request %x", req)
		}
	})
}
