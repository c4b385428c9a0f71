package hashicorp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/vault"
)

// Backoff bounds the retries of one operation: exponential from Initial,
// doubling up to Max, with full jitter, for at most Elapsed in all.
type Backoff struct {
	Initial time.Duration // default 100ms
	Max     time.Duration // default 5s
	Elapsed time.Duration // default 2m
}

func (b *Backoff) setDefaults() {
	if b.Initial == 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = 5 * time.Second
	}
	if b.Elapsed == 0 {
		b.Elapsed = 2 * time.Minute
	}
}

// delay is the wait before retry n (0-based): a random duration up to the
// exponential bound, so that many reconcilers do not retry in step.
func (b Backoff) delay(n int) time.Duration {
	bound := b.Initial << min(n, 20)
	if bound > b.Max || bound <= 0 {
		bound = b.Max
	}
	return time.Duration(rand.Int64N(int64(bound)) + 1)
}

type metrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	renewals *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reconciler_vault_request_duration_seconds",
			Help:    "Duration of Vault operations, retries included, by engine and operation.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"engine", "operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_vault_request_errors_total",
			Help: "Failed Vault requests by engine, operation and reason (retryable ones count each attempt).",
		}, []string{"engine", "operation", "reason"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_vault_token_renewals_total",
			Help: "Vault token renewals by result: renewed, or ended (a new login follows).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.errors, m.renewals)
	}
	return m
}

// do runs one Vault operation with retries. path names what was asked of
// Vault for errors; it must never hold secret material. fn's error is
// classified, never returned as is: Vault's own error text carries the
// request URL and may quote the request.
func (c *Client) do(ctx context.Context, engine, op, path string, fn func(context.Context) error) error {
	start := time.Now()
	defer func() {
		c.metrics.duration.WithLabelValues(engine, op).Observe(time.Since(start).Seconds())
	}()
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		reason, retry := classify(err)
		c.metrics.errors.WithLabelValues(engine, op, reason).Inc()
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", op, path, ctx.Err())
		}
		if !retry {
			return describe(op, path, err)
		}
		wait := c.cfg.Retry.delay(attempt)
		if time.Since(start)+wait > c.cfg.Retry.Elapsed {
			return fmt.Errorf("%s %s: vault unavailable for %s, giving up: %w", op, path, time.Since(start).Round(time.Second), describe(op, path, err))
		}
		c.log.DebugContext(ctx, "vault request failed; retrying", "engine", engine, "operation", op, "reason", reason, "attempt", attempt+1, "wait", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", op, path, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// classify says why a request failed (a low-cardinality metric label) and
// whether trying again can help.
func classify(err error) (reason string, retry bool) {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusTooManyRequests:
			return "rate_limited", true
		case re.StatusCode == http.StatusServiceUnavailable:
			return "unavailable", true // sealed, standby, or shutting down
		case re.StatusCode == http.StatusPreconditionFailed:
			return "not_consistent", true // a performance standby behind
		case re.StatusCode >= 500:
			return "server_error", true
		case re.StatusCode == http.StatusForbidden:
			return "permission_denied", false
		case re.StatusCode == http.StatusNotFound:
			return "not_found", false
		}
		return "bad_request", false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "timeout", true
	}
	return "connection", true
}

// describe turns a failed request into an error that names the path and
// says what to fix, without quoting the request.
func describe(op, path string, err error) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s %s: cannot reach vault: %w", op, path, err)
	}
	msg := strings.Join(re.Errors, "; ")
	switch re.StatusCode {
	case http.StatusForbidden:
		return fmt.Errorf("%s %s: %w: permission denied: the token's policy must allow %q on %q (reconciler vault bootstrap writes such a policy)",
			op, path, vault.ErrDenied, capability(op), path)
	case http.StatusNotFound:
		return fmt.Errorf("%s %s: %w: no such path (%s): check the mount, role and key names in the configuration", op, path, vault.ErrDenied, msg)
	}
	if re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("%s %s: %w: vault refused the request (HTTP %d): %s", op, path, vault.ErrDenied, re.StatusCode, msg)
	}
	return fmt.Errorf("%s %s: vault answered HTTP %d: %s", op, path, re.StatusCode, msg)
}

// capability is the ACL capability an operation needs.
func capability(op string) string {
	switch op {
	case "ca-chain", "crl", "lookup-self":
		return "read"
	}
	return "update"
}
