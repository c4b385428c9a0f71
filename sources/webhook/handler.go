package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// The results of a request, besides the refusal reasons.
const (
	resultAccepted = "accepted"
	resultPing     = "ping"
)

// providerUnknown labels requests that name no provider.
const providerUnknown = "unknown"

type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reconciler_webhook_requests_total",
		Help: "Git webhook requests by provider and result: accepted, ping, or the refusal's reason.",
	}, []string{"provider", "result"})}
	results := []string{resultAccepted, resultPing}
	for _, r := range reasons {
		results = append(results, string(r))
	}
	for _, p := range append(providers, providerUnknown) {
		for _, r := range results {
			m.requests.WithLabelValues(p, r)
		}
	}
	if reg != nil {
		if err := reg.Register(m.requests); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Handler returns the handler for POST /v1/webhooks/git. It answers 202
// Accepted for a push, after calling onPush with it; 200 OK for a ping;
// 400, 401, 403 or 413 for a refusal (405 for a method other than POST),
// with the Reason as a text body. Every request is counted in
// reconciler_webhook_requests_total{provider, result} and logged with its
// provider, delivery ID and result only; refusals before the signature
// held are logged at Debug, so that anyone's junk cannot flood the log.
//
// onPush runs on the request's goroutine and must not block: hand the push
// over (a non-blocking send on a buffered channel, coalescing pushes that
// arrive while a fetch runs) and return. ctx is the request's and is
// canceled when the handler returns. Providers wait only seconds for an
// answer and count a slow one as failed.
//
// The server should set read and write timeouts: the handler bounds the
// body, not how slowly it arrives.
func (v *Verifier) Handler(onPush func(ctx context.Context, p Push)) http.Handler {
	if onPush == nil {
		panic("webhook: Handler needs an onPush function")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.receive(w, r)
		switch {
		case err == nil:
			onPush(r.Context(), *p)
			v.record(r.Context(), p.Provider, p.Delivery, resultAccepted, slog.LevelInfo)
			answer(w, http.StatusAccepted, resultAccepted)
		case errors.Is(err, ErrPing):
			v.record(r.Context(), GitHub, loggedDelivery(GitHub, r.Header), resultPing, slog.LevelInfo)
			answer(w, http.StatusOK, "ok")
		default:
			e, _ := errors.AsType[*Error](err) // receive returns *Error or ErrPing
			level := slog.LevelDebug
			if e.authenticated {
				level = slog.LevelWarn
			}
			v.record(r.Context(), e.Provider, loggedDelivery(e.Provider, r.Header), string(e.Reason), level)
			status := e.Status()
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				status = http.StatusMethodNotAllowed
			}
			answer(w, status, string(e.Reason))
		}
	})
}

// receive reads and verifies one request.
func (v *Verifier) receive(w http.ResponseWriter, r *http.Request) (*Push, error) {
	if r.Method != http.MethodPost {
		return nil, refuse(providerOf(r.Header), ReasonMalformed, "method is not POST")
	}
	provider, err := v.precheck(r.Header)
	if err != nil {
		return nil, err
	}
	if r.ContentLength > v.maxBody {
		return nil, refuse(provider, ReasonTooLarge, "body over the size limit")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, v.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, refuse(provider, ReasonTooLarge, "body over the size limit")
		}
		return nil, refuse(provider, ReasonMalformed, "body could not be read")
	}
	return v.Verify(r.Header, body)
}

func (v *Verifier) record(ctx context.Context, provider, delivery, result string, level slog.Level) {
	if provider == "" {
		provider = providerUnknown
	}
	v.metrics.requests.WithLabelValues(provider, result).Inc()
	v.log.Log(ctx, level, "git webhook", "provider", provider, "delivery", delivery, "result", result)
}

// loggedDelivery is the request's delivery ID if it is well formed, else
// "": an unauthenticated request chooses its headers, and only what looks
// like an ID is worth a log line.
func loggedDelivery(provider string, h http.Header) string {
	id, _ := deliveryOf(provider, h)
	return id
}

func answer(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text+"\n")
}
