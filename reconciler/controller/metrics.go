package controller

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/reconciler/plan"
)

// metrics are the controller's series. The per-instance and coverage
// gauges are computed from the views at scrape time, so an instance that
// left the fleet leaves no stale series behind.
type metrics struct {
	c           *Controller
	fetch       prometheus.Histogram
	fetchErrors prometheus.Counter
	reconcile   *prometheus.HistogramVec
	latency     prometheus.Histogram
	revocations prometheus.Counter
	refusals    prometheus.Counter
	violations  *prometheus.GaugeVec
	refused     *prometheus.Desc

	instances *prometheus.Desc
	coverage  *prometheus.Desc
	expiry    *prometheus.Desc
	phases    *prometheus.Desc
}

func newMetrics(c *Controller, reg prometheus.Registerer) *metrics {
	m := &metrics{
		c: c,
		fetch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_source_fetch_duration_seconds", Help: "Time to read the fleet source.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8),
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_source_fetch_errors_total", Help: "Reads of the fleet source that failed.",
		}),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reconciler_reconcile_duration_seconds", Help: "Time of one instance's reconcile turn, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "reconciler_commit_to_verified_seconds",
			Help:    "From reading a revision to its agent confirming it (SSL verified, or off).",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900},
		}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_certificate_revocations_total", Help: "Certificates revoked: replaced, or SSL disabled.",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_source_refused_revisions_total",
			Help: "Revisions of the fleet refused: a commit unsigned or signed by an untrusted key, or history rewritten.",
		}),
		refused: prometheus.NewDesc("reconciler_source_refused",
			"1 while the latest revision read is refused and an older one stays applied, else 0.", nil, nil),
		violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconciler_policy_violations", Help: "Instances a policy rule denies, by rule, in the last plan.",
		}, []string{"policy"}),
		instances: prometheus.NewDesc("reconciler_instances",
			"Instances by datastore, desired SSL, SSL verified by their agent over a sealed channel, and RPC encryption.",
			[]string{"datastore", "ssl", "verified", "rpc_encryption"}, nil),
		coverage: prometheus.NewDesc("reconciler_encryption_coverage_ratio",
			"Share of each datastore's instances whose agent verified TLS is served.", []string{"datastore"}, nil),
		expiry: prometheus.NewDesc("reconciler_certificate_expiry_timestamp_seconds",
			"When each instance's served certificate expires, in Unix seconds.", []string{"instance"}, nil),
		phases: prometheus.NewDesc("reconciler_instance_phase",
			"Instances in each phase.", []string{"phase"}, nil),
	}
	m.reconcile.WithLabelValues("ok")
	m.reconcile.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.fetch, m.fetchErrors, m.reconcile, m.latency, m.revocations, m.refusals, m.violations, m)
	}
	return m
}

// observePlan sets the violation gauges from a plan.
func (m *metrics) observePlan(p *plan.Plan) {
	counts := map[string]int{}
	for _, pi := range p.Instances {
		for _, d := range pi.Policy.Deny {
			counts[d.Namespace+"."+d.Rule]++
		}
	}
	m.violations.Reset()
	for rule, n := range counts {
		m.violations.WithLabelValues(rule).Set(float64(n))
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.instances
	ch <- m.coverage
	ch <- m.expiry
	ch <- m.phases
	ch <- m.refused
}

// Collect implements prometheus.Collector from the current views.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	refused := 0.0
	if m.c.Source().Refused != "" {
		refused = 1
	}
	ch <- prometheus.MustNewConstMetric(m.refused, prometheus.GaugeValue, refused)
	type key struct{ ds, ssl, verified, rpc string }
	counts := map[key]int{}
	total, verified := map[string]int{}, map[string]int{}
	phases := map[string]int{}
	for _, v := range m.c.Instances() {
		if v.Unmanaged {
			continue
		}
		counts[key{v.Datastore, onOff(v.SSL), strconv.FormatBool(v.Verified), onOff(v.RPC)}]++
		total[v.Datastore]++
		if v.Verified {
			verified[v.Datastore]++
			if !v.NotAfter.IsZero() {
				ch <- prometheus.MustNewConstMetric(m.expiry, prometheus.GaugeValue, float64(v.NotAfter.Unix()), v.Name)
			}
		}
		phases[string(v.Phase)]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.instances, prometheus.GaugeValue, float64(n), k.ds, k.ssl, k.verified, k.rpc)
	}
	for ds, n := range total {
		ch <- prometheus.MustNewConstMetric(m.coverage, prometheus.GaugeValue, float64(verified[ds])/float64(n), ds)
	}
	for p, n := range phases {
		ch <- prometheus.MustNewConstMetric(m.phases, prometheus.GaugeValue, float64(n), p)
	}
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}
