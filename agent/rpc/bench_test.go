package rpc

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkRoundTrip measures what sealing adds to a request and its
// reply over loopback HTTP: the client seals a 1 KiB payload and POSTs
// it, the server opens it and seals a 1 KiB reply, the client opens that.
// The plaintext form runs the same exchange through keyless sessions.
// Each iteration runs one of each, back to back, in alternating order, so
// machine noise hits them alike. The metrics report each per round trip
// (sealed-ns/rt, plain-ns/rt) and the overhead twice: overhead-% from the
// summed durations, which a few outliers (a GC pause, a scheduler hiccup)
// can dominate, and overhead-median-% from the median over iterations of
// the ratio of the sealed to the plaintext round trip of one iteration.
func BenchmarkRoundTrip(b *testing.B) {
	payload := make([]byte, 1024)
	rand.Read(payload)
	keyed := func(side Side) *Session { return session(b, side, keyring(b, "orders-db", 0x10, 1)) }
	keyless := func(side Side) *Session {
		return session(b, side, NewKeyring("orders-db"), WithPlaintextAllowed(true))
	}
	serve := func(s *Session) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessage+1))
			if err != nil {
				http.Error(w, "read body", http.StatusBadRequest)
				return
			}
			_, p, err := s.Open(body)
			if err != nil {
				http.Error(w, Reason(err), http.StatusForbidden)
				return
			}
			reply, err := s.Seal(p)
			if err != nil {
				http.Error(w, "seal reply", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(reply)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /sealed", serve(keyed(SideReconciler)))
	mux.Handle("POST /plain", serve(keyless(SideReconciler)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()

	roundTrip := func(s *Session, url string) time.Duration {
		start := time.Now()
		req, err := s.Seal(payload)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(req))
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %s (%v)", resp.StatusCode, body, err)
		}
		_, reply, err := s.Open(body)
		if err != nil {
			b.Fatal(err)
		}
		if len(reply) != len(payload) {
			b.Fatalf("reply of %d bytes", len(reply))
		}
		return time.Since(start)
	}
	sealedAgent, plainAgent := keyed(SideAgent), keyless(SideAgent)
	for range 100 { // warm the connection pool and the caches
		roundTrip(sealedAgent, srv.URL+"/sealed")
		roundTrip(plainAgent, srv.URL+"/plain")
	}

	var sealed, plain time.Duration
	var ratios []float64 // sealed / plain, one per iteration
	n := 0
	for b.Loop() {
		var s, p time.Duration
		if n%2 == 0 {
			s = roundTrip(sealedAgent, srv.URL+"/sealed")
			p = roundTrip(plainAgent, srv.URL+"/plain")
		} else {
			p = roundTrip(plainAgent, srv.URL+"/plain")
			s = roundTrip(sealedAgent, srv.URL+"/sealed")
		}
		sealed += s
		plain += p
		ratios = append(ratios, float64(s)/float64(max(p, 1)))
		n++
	}
	b.ReportMetric(float64(sealed.Nanoseconds())/float64(n), "sealed-ns/rt")
	b.ReportMetric(float64(plain.Nanoseconds())/float64(n), "plain-ns/rt")
	b.ReportMetric(100*(float64(sealed)-float64(plain))/float64(plain), "overhead-%")
	b.ReportMetric(100*(median(ratios)-1), "overhead-median-%")
}

// median returns the median of xs, which it sorts; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}

// BenchmarkSealOpen measures sealing and opening alone, both forms, and
// the sealed form again with the receiver counting in Metrics, as
// daemons do.
func BenchmarkSealOpen(b *testing.B) {
	metrics := NewMetrics(nil)
	for _, size := range []int{64, 1024, 64 << 10} {
		payload := make([]byte, size)
		for _, tc := range []struct {
			name     string
			from, to *Session
		}{
			{"sealed", session(b, SideReconciler, keyring(b, "orders-db", 0x10, 1)), session(b, SideAgent, keyring(b, "orders-db", 0x10, 1))},
			{"sealed+metrics", session(b, SideReconciler, keyring(b, "orders-db", 0x10, 1)),
				session(b, SideAgent, keyring(b, "orders-db", 0x10, 1), WithMetrics(metrics))},
			{"plaintext", session(b, SideReconciler, NewKeyring("orders-db"), WithPlaintextAllowed(true)),
				session(b, SideAgent, NewKeyring("orders-db"), WithPlaintextAllowed(true))},
		} {
			b.Run(fmt.Sprintf("%s/%dB", tc.name, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					m, err := tc.from.Seal(payload)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := tc.to.Open(m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
