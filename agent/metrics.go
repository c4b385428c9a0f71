package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's own series, for a Prometheus that scrapes the
// host. They carry no secret and, with one agent per instance, no
// instance label: the scrape target says which instance it is.
type metrics struct {
	applies   *prometheus.CounterVec
	polls     *prometheus.CounterVec
	phase     *prometheus.GaugeVec
	applied   prometheus.Gauge
	verified  prometheus.Gauge
	notAfter  prometheus.Gauge
	cert      *prometheus.GaugeVec
	lastError prometheus.Gauge
}

var phases = []Phase{Pending, Applying, Active, RestartRequired, Error}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_agent_applies_total",
			Help: "Desired states the agent applied, by resulting phase.",
		}, []string{"phase"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_agent_polls_total",
			Help: "Long polls of the reconciler by result: changed, unchanged, error.",
		}, []string{"result"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconciler_agent_phase",
			Help: "1 for the instance's current phase, 0 for the others.",
		}, []string{"phase"}),
		applied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_agent_applied_generation",
			Help: "The desired-state generation last applied.",
		}),
		verified: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_agent_ssl_verified",
			Help: "1 when a handshake in the datastore's protocol saw the issued certificate served.",
		}),
		notAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_agent_certificate_expiry_timestamp_seconds",
			Help: "When the installed certificate expires, in Unix seconds (0 without one).",
		}),
		cert: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconciler_agent_certificate_info",
			Help: "1, labelled with the installed certificate's serial; one series at a time.",
		}, []string{"serial"}),
		lastError: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_agent_last_error_timestamp_seconds",
			Help: "When an apply last ended in Error, in Unix seconds (0: never since the agent started).",
		}),
	}
	for _, p := range phases {
		m.phase.WithLabelValues(string(p))
		m.applies.WithLabelValues(string(p))
	}
	for _, r := range []string{"changed", "unchanged", "error"} {
		m.polls.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.applies, m.polls, m.phase, m.applied, m.verified, m.notAfter, m.cert, m.lastError)
	}
	return m
}

// observe sets the gauges from the status the agent now reports.
func (m *metrics) observe(s Status) {
	for _, p := range phases {
		v := 0.0
		if p == s.Phase {
			v = 1
		}
		m.phase.WithLabelValues(string(p)).Set(v)
	}
	m.applied.Set(float64(s.Generation))
	m.verified.Set(b2f(s.Verified))
	m.cert.Reset()
	if s.SSL && s.Serial != "" {
		m.cert.WithLabelValues(s.Serial).Set(1)
	}
	if s.SSL && !s.NotAfter.IsZero() {
		m.notAfter.Set(float64(s.NotAfter.Unix()))
	} else {
		m.notAfter.Set(0)
	}
	if s.Phase == Error {
		m.lastError.Set(float64(s.ReportedAt.Unix()))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
