package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Probe is what a running reconciler says about its agents, from its API
// (the instances, with an admin token, which alone sees key versions)
// and its /metrics. bench/agents.sh checks it before measuring: N
// agents enrolled and Active, and seen within a heartbeat or two.
type Probe struct {
	// From GET /v1/instances; all zero with metrics only.
	Instances int `json:"instances"`
	WithKey   int `json:"with_key"` // the reconciler seals with a key (encrypted_rpc_messaging.key_version > 0)
	Active    int `json:"active"`
	Verified  int `json:"ssl_verified"`
	Seen      int `json:"seen"` // agent_last_seen within the probe's seen interval

	// From /metrics.
	Goroutines       float64 `json:"go_goroutines"`
	HeapInuseBytes   float64 `json:"heap_inuse_bytes"`
	StackInuseBytes  float64 `json:"stack_inuse_bytes"` // goroutine stacks: outside the heap, inside RSS
	ResidentBytes    float64 `json:"resident_bytes"`
	CPUSeconds       float64 `json:"process_cpu_seconds"`
	PollsOpened      float64 `json:"rpc_to_reconciler_ok"` // sealed polls the reconciler opened: one per heartbeat
	PollsRefused     float64 `json:"rpc_to_reconciler_refused"`
	Enrollments      float64 `json:"enrollments_ok"`
	Reconciles       float64 `json:"reconciles"`   // instance reconcile turns
	SourceReads      float64 `json:"source_reads"` // reads (and plans) of the whole fleet
	PhaseActive      float64 `json:"phase_active"`
	LastSeenSeries   int     `json:"last_seen_series"`
	LastSeenRecently int     `json:"last_seen_recent"` // series within the seen interval
}

// prober asks one reconciler's API.
type prober struct {
	api   string
	token string
	http  *http.Client
	seen  time.Duration
	now   func() time.Time
}

func newProber(api string, roots *x509.CertPool, token string, seen time.Duration) *prober {
	return &prober{api: strings.TrimSuffix(api, "/"), token: token, seen: seen, now: time.Now,
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		}}}
}

// probe reads /metrics and, unless metricsOnly, /v1/instances.
func (p *prober) probe(ctx context.Context, metricsOnly bool) (Probe, error) {
	var out Probe
	if err := p.metrics(ctx, &out); err != nil {
		return out, err
	}
	if metricsOnly {
		return out, nil
	}
	return out, p.instances(ctx, &out)
}

func (p *prober) get(ctx context.Context, path string, auth bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.api+path, nil)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", path, err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("probe %s: %s", path, resp.Status)
	}
	return body, nil
}

func (p *prober) instances(ctx context.Context, out *Probe) error {
	body, err := p.get(ctx, "/v1/instances", true)
	if err != nil {
		return err
	}
	var list struct {
		Instances []struct {
			Phase     string    `json:"phase"`
			Verified  bool      `json:"ssl_verified"`
			LastSeen  time.Time `json:"agent_last_seen"`
			Encrypted *struct {
				KeyVersion uint32 `json:"key_version"`
			} `json:"encrypted_rpc_messaging"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("probe /v1/instances: %w", err)
	}
	now := p.now()
	for _, in := range list.Instances {
		out.Instances++
		if in.Encrypted != nil && in.Encrypted.KeyVersion > 0 {
			out.WithKey++
		}
		if in.Phase == "Active" {
			out.Active++
		}
		if in.Verified {
			out.Verified++
		}
		if !in.LastSeen.IsZero() && now.Sub(in.LastSeen) <= p.seen {
			out.Seen++
		}
	}
	return nil
}

func (p *prober) metrics(ctx context.Context, out *Probe) error {
	body, err := p.get(ctx, "/metrics", false)
	if err != nil {
		return err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("probe /metrics: %w", err)
	}
	sum := func(name string, match func(labels map[string]string) bool) float64 {
		total := 0.0
		for _, m := range families[name].GetMetric() {
			if match == nil || match(labelsOf(m)) {
				total += value(m)
			}
		}
		return total
	}
	is := func(k, v string) func(map[string]string) bool {
		return func(l map[string]string) bool { return l[k] == v }
	}
	out.Goroutines = sum("go_goroutines", nil)
	out.HeapInuseBytes = sum("go_memstats_heap_inuse_bytes", nil)
	out.StackInuseBytes = sum("go_memstats_stack_inuse_bytes", nil)
	out.ResidentBytes = sum("process_resident_memory_bytes", nil)
	out.CPUSeconds = sum("process_cpu_seconds_total", nil)
	out.PollsOpened = sum("reconciler_rpc_messages_total", func(l map[string]string) bool {
		return l["direction"] == "to_reconciler" && l["result"] == "ok"
	})
	out.PollsRefused = sum("reconciler_rpc_messages_total", func(l map[string]string) bool {
		return l["direction"] == "to_reconciler" && l["result"] != "ok"
	})
	out.Enrollments = sum("reconciler_agent_enrollments_total", is("result", "ok"))
	out.Reconciles = sum("reconciler_reconcile_duration_seconds", nil)
	out.SourceReads = sum("reconciler_source_fetch_duration_seconds", nil)
	out.PhaseActive = sum("reconciler_instance_phase", is("phase", "Active"))
	now := float64(p.now().Unix())
	for _, m := range families["reconciler_agent_last_seen_timestamp_seconds"].GetMetric() {
		out.LastSeenSeries++
		if now-value(m) <= p.seen.Seconds() {
			out.LastSeenRecently++
		}
	}
	return nil
}

func labelsOf(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// value is a sample's value; for a histogram, its count.
func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
