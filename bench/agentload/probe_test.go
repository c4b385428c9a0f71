package main

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// fakeAPI serves /metrics from a registry holding the series the daemon
// exports, and /v1/instances to the admin token only.
func fakeAPI(t *testing.T, now time.Time) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	reg := prometheus.NewRegistry()
	gauge := func(name string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name})
		g.Set(v)
		reg.MustRegister(g)
	}
	gauge("go_goroutines", 20017)
	gauge("go_memstats_heap_inuse_bytes", 64<<20)
	gauge("go_memstats_stack_inuse_bytes", 90<<20)
	gauge("process_resident_memory_bytes", 150<<20)
	cpu := prometheus.NewCounter(prometheus.CounterOpts{Name: "process_cpu_seconds_total", Help: "cpu"})
	cpu.Add(12.5)
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reconciler_rpc_messages_total", Help: "m"}, []string{"direction", "result"})
	msgs.WithLabelValues("to_reconciler", "ok").Add(900)
	msgs.WithLabelValues("to_reconciler", "replay").Add(2)
	msgs.WithLabelValues("to_reconciler", "stale").Add(1)
	msgs.WithLabelValues("to_agent", "ok").Add(5000) // the agents' side: not the daemon's
	enroll := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reconciler_agent_enrollments_total", Help: "e"}, []string{"result"})
	enroll.WithLabelValues("ok").Add(3)
	enroll.WithLabelValues("no_token").Add(7)
	reconcile := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reconciler_reconcile_duration_seconds", Help: "r"}, []string{"result"})
	for range 4 {
		reconcile.WithLabelValues("ok").Observe(0.01)
	}
	reconcile.WithLabelValues("error").Observe(0.01)
	fetch := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "reconciler_source_fetch_duration_seconds", Help: "f"})
	fetch.Observe(0.2)
	fetch.Observe(0.3)
	phase := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reconciler_instance_phase", Help: "p"}, []string{"phase"})
	phase.WithLabelValues("Active").Set(2)
	phase.WithLabelValues("Unreachable").Set(1)
	seen := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reconciler_agent_last_seen_timestamp_seconds", Help: "s"}, []string{"instance"})
	seen.WithLabelValues("a").Set(float64(now.Add(-10 * time.Second).Unix()))
	seen.WithLabelValues("b").Set(float64(now.Add(-10 * time.Minute).Unix()))
	reg.MustRegister(cpu, msgs, enroll, reconcile, fetch, phase, seen)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/instances", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer admin-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"instances": []map[string]any{
			{"name": "a", "phase": "Active", "ssl_verified": true, "agent_last_seen": now.Add(-10 * time.Second),
				"encrypted_rpc_messaging": map[string]any{"enabled": true, "key_version": 1}},
			{"name": "b", "phase": "Active", "agent_last_seen": now.Add(-10 * time.Minute),
				"encrypted_rpc_messaging": map[string]any{"enabled": true, "key_version": 2}},
			{"name": "c", "phase": "Unreachable", "encrypted_rpc_messaging": map[string]any{"enabled": true}},
		}})
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv, roots
}

func TestProbeCountsWhatTheDaemonReports(t *testing.T) {
	now := time.Now()
	srv, roots := fakeAPI(t, now)
	metrics := Probe{Goroutines: 20017, HeapInuseBytes: 64 << 20, StackInuseBytes: 90 << 20, ResidentBytes: 150 << 20, CPUSeconds: 12.5,
		PollsOpened: 900, PollsRefused: 3, Enrollments: 3, Reconciles: 5, SourceReads: 2, PhaseActive: 2,
		LastSeenSeries: 2, LastSeenRecently: 1}
	full := metrics
	full.Instances, full.WithKey, full.Active, full.Verified, full.Seen = 3, 2, 2, 1, 1
	for _, tc := range []struct {
		name        string
		metricsOnly bool
		want        Probe
	}{
		{"metrics and instances", false, full},
		{"metrics only", true, metrics},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProber(srv.URL, roots, "admin-token", 75*time.Second)
			p.now = func() time.Time { return now }
			got, err := p.probe(t.Context(), tc.metricsOnly)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("probe (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProbeFailsWithoutTheAdminToken(t *testing.T) {
	srv, roots := fakeAPI(t, time.Now())
	if _, err := newProber(srv.URL, roots, "wrong", time.Minute).probe(t.Context(), false); err == nil {
		t.Fatal("probe with a wrong token: got nil error")
	}
}
