package transport

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/installers"
)

// BenchmarkPollRoundTrip measures what sealing adds to the real protocol:
// one agent poll and its reply through Client and Server over loopback
// HTTPS (TLS 1.3, as deployed), JSON, the request ID, the counters
// written to the state directory, everything. "heartbeat" is the common
// case, a status and an empty reply; "desired" carries a real bundle
// (certificate, chain and private key from the local CA) in the reply.
// A sealed and a plaintext agent poll the same server back to back in
// every iteration, in alternating order, so machine noise hits both
// alike. Reported: each arm's median round trip, and the median over
// iterations of the pair's ratio, as overhead-median-%.
func BenchmarkPollRoundTrip(b *testing.B) {
	ca := datastoretest.NewCA(b)
	cert := ca.Issue(b, "orders-db")
	bundle := &installers.Bundle{CertPEM: cert.CertPEM, ChainPEM: cert.ChainPEM, Key: cert.Key,
		Serial: cert.Serial, Fingerprint: cert.Fingerprint, MinVersion: "1.2"}
	for _, tc := range []struct {
		name    string
		desired bool
		https   bool
	}{{"heartbeat/https", false, true}, {"desired/https", true, true}, {"heartbeat/http", false, false}, {"desired/http", true, false}} {
		b.Run(tc.name, func(b *testing.B) {
			tokens, err := NewTokenDir(filepath.Join(b.TempDir(), "tokens"))
			if err != nil {
				b.Fatal(err)
			}
			srv := NewServer(WithTokens(tokens), WithPlaintextAllowed(true))
			https := httptest.NewUnstartedServer(srv.Handler())
			if tc.https {
				https.StartTLS()
			} else {
				https.Start()
			}
			defer https.Close()
			roots := x509.NewCertPool()
			if tc.https {
				roots.AddCert(https.Certificate())
			}
			srv.Register("sealed-db", Keys{Current: key(1, 0x11)})
			srv.Register("plain-db", Keys{AllowPlaintext: true})
			token, _ := tokens.Issue("sealed-db")
			newClient := func(name string, plaintext bool) *Client {
				dir := b.TempDir()
				tokenFile := ""
				if !plaintext {
					tokenFile = filepath.Join(dir, "token")
					if err := os.WriteFile(tokenFile, FormatToken(token), 0o600); err != nil {
						b.Fatal(err)
					}
				}
				c, err := NewClient(ClientConfig{Instance: name, URL: "https://" + https.Listener.Addr().String(), RootCAs: roots,
					StateDir: filepath.Join(dir, "state"), TokenFile: tokenFile, AllowPlaintext: plaintext})
				if err != nil {
					b.Fatal(err)
				}
				if !tc.https {
					// Past NewClient's https check, to measure the
					// protocol alone over loopback HTTP.
					c.bases, c.http = []string{https.URL}, https.Client()
				}
				c.cfg.Wait = time.Nanosecond // reply at once: WaitMS 0
				return c
			}
			sealed, plain := newClient("sealed-db", false), newClient("plain-db", true)
			if tc.desired {
				for _, n := range []string{"sealed-db", "plain-db"} {
					srv.Publish(n, agent.Desired{Generation: 1, SSL: true, Bundle: bundle})
				}
			}
			ctx := context.Background()
			status := agent.Status{Phase: agent.Active, SSL: true, Verified: true, Serial: cert.Serial, Fingerprint: cert.Fingerprint, NotAfter: cert.NotAfter}
			poll := func(c *Client, name string) time.Duration {
				s := status
				s.Instance = name
				start := time.Now()
				d, err := c.Poll(ctx, s)
				elapsed := time.Since(start)
				if err != nil || (d != nil) != tc.desired {
					b.Fatalf("poll %s: %+v, %v", name, d, err)
				}
				return elapsed
			}
			for range 50 { // enroll, warm the connections and the caches
				poll(sealed, "sealed-db")
				poll(plain, "plain-db")
			}
			var s, p []time.Duration
			var ratios []float64
			i := 0
			for b.Loop() {
				var ts, tp time.Duration
				if i%2 == 0 {
					ts, tp = poll(sealed, "sealed-db"), poll(plain, "plain-db")
				} else {
					tp, ts = poll(plain, "plain-db"), poll(sealed, "sealed-db")
				}
				s, p = append(s, ts), append(p, tp)
				ratios = append(ratios, float64(ts)/float64(tp))
				i++
			}
			slices.Sort(s)
			slices.Sort(p)
			slices.Sort(ratios)
			b.ReportMetric(float64(s[len(s)/2].Nanoseconds()), "sealed-ns/rt")
			b.ReportMetric(float64(p[len(p)/2].Nanoseconds()), "plain-ns/rt")
			b.ReportMetric(100*(ratios[len(ratios)/2]-1), "overhead-median-%")
		})
	}
}
