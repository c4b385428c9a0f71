package rpc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts opened messages in reconciler_rpc_messages_total by
// direction and result. One Metrics serves every session of a process.
type Metrics struct {
	messages *prometheus.CounterVec
	// byReason holds the series of messages, resolved once in NewMetrics
	// so that counting an Open hashes no labels: [direction-1][reason],
	// reason as returned by reason (0 for ok, i+1 for results[i]).
	byReason [2][1 + len(results)]prometheus.Counter
}

// NewMetrics returns the RPC metrics registered on reg; a nil reg
// registers nothing (the counters still count, for tests). If reg already
// holds the counter, for example from another NewMetrics call, that one
// is reused rather than a panic raised.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reconciler_rpc_messages_total",
		Help: "RPC messages opened, by direction and result: ok, or the reason for refusing it (replay, stale, tampered, wrong_instance, wrong_direction, unknown_key_version, plaintext_refused, malformed).",
	}, []string{"direction", "result"})
	if reg != nil {
		if err := reg.Register(messages); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
			messages = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	// Every series exists from the start, at zero, so a rate() or an
	// alert on a refusal sees its first occurrence.
	m := &Metrics{messages: messages}
	for _, d := range []Direction{ToAgent, ToReconciler} {
		for i := range m.byReason[d-1] {
			m.byReason[d-1][i] = messages.WithLabelValues(d.String(), resultLabel(i))
		}
	}
	return m
}

// count counts one opened message of direction d with the given reason
// index (see reason).
func (m *Metrics) count(d Direction, r int) {
	if m == nil {
		return
	}
	if d.valid() && r >= 0 && r < len(m.byReason[d-1]) {
		m.byReason[d-1][r].Inc()
		return
	}
	// Not reached by Open, whose errors all carry a reason; kept so that
	// such a message would still be counted, as before, under its label.
	m.messages.WithLabelValues(d.String(), resultLabel(r)).Inc()
}
