package transport

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/rpc"
)

// FuzzParseToken: a token file's parser never panics, accepts exactly
// the 64-hex-digit form, and round-trips what it accepts.
func FuzzParseToken(f *testing.F) {
	tok, _ := rpc.NewBootstrapToken()
	for _, seed := range [][]byte{FormatToken(tok), []byte(""), []byte("zz"), bytes.Repeat([]byte("a"), 64), bytes.Repeat([]byte("g"), 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseToken(data)
		if err != nil {
			if bytes.Contains([]byte(err.Error()), bytes.TrimSpace(data)) && len(bytes.TrimSpace(data)) > 8 {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if len(got) != rpc.TokenSize {
			t.Fatalf("accepted a token of %d bytes", len(got))
		}
		again, err := ParseToken(FormatToken(got))
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzPollPayload: whatever an authenticated (here: plaintext-allowed)
// agent puts in a poll's payload, the server answers 200 or 400 and
// never panics.
func FuzzPollPayload(f *testing.F) {
	for _, seed := range []string{
		`{"id":"AAAAAAAAAAAAAAAAAAAAAA==","waitMs":0,"status":{"instance":"orders-db","generation":1}}`,
		`{"id":"AAAA","waitMs":-5}`, `{}`, `null`, `[]`, `{"id":"AAAAAAAAAAAAAAAAAAAAAA==","waitMs":9223372036854775807}`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	srv := NewServer(WithPlaintextAllowed(true))
	if err := srv.Register("orders-db", Keys{AllowPlaintext: true}); err != nil {
		f.Fatal(err)
	}
	srv.Publish("orders-db", agent.Desired{Generation: 9})
	h := srv.Handler()
	agentSide, err := rpc.NewSession(rpc.SideAgent, rpc.NewKeyring("orders-db"), rpc.WithPlaintextAllowed(true))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1<<16 {
			return
		}
		msg, err := agentSide.Seal(payload)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, pollPath("orders-db"), bytes.NewReader(msg))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for payload %q", rec.Code, payload)
		}
	})
}
