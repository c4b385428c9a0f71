package rpc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts opened messages in reconciler_rpc_messages_total by
// direction and result. One Metrics serves every session of a process.
type Metrics struct {
	messages *prometheus.CounterVec
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
	for _, d := range []Direction{ToAgent, ToReconciler} {
		messages.WithLabelValues(d.String(), ResultOK)
		for _, r := range results {
			messages.WithLabelValues(d.String(), r.label)
		}
	}
	return &Metrics{messages: messages}
}

func (m *Metrics) count(d Direction, result string) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(d.String(), result).Inc()
}
