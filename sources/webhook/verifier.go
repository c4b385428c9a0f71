package webhook

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The defaults of the options.
const (
	DefaultMaxBodySize     = 1 << 20
	DefaultClockWindow     = 5 * time.Minute
	DefaultReplayCacheSize = 4096
)

// Option configures New.
type Option func(*options)

type options struct {
	providers []string
	window    time.Duration
	cacheSize int
	maxBody   int64
	log       *slog.Logger
	reg       prometheus.Registerer
}

// WithProviders sets the providers whose deliveries are accepted (GitHub,
// GitLab, Gitea); the default is all three. Accept only those you use:
// GitLab's token mode sends the secret itself with every delivery, so
// whoever can read one (a proxy's log) could forge deliveries for the
// other providers too.
func WithProviders(p ...string) Option {
	return func(o *options) { o.providers = p }
}

// WithClockWindow sets how far a signed delivery's timestamp may lie from
// the local clock, either way; the default is DefaultClockWindow, the
// Standard Webhooks recommendation. Only GitLab's signed deliveries carry
// a timestamp.
func WithClockWindow(d time.Duration) Option {
	return func(o *options) { o.window = d }
}

// WithReplayCacheSize sets how many accepted delivery IDs are remembered
// (the least recently seen are forgotten first); the default is
// DefaultReplayCacheSize. An entry takes under 200 bytes.
func WithReplayCacheSize(n int) Option {
	return func(o *options) { o.cacheSize = n }
}

// WithMaxBodySize sets the largest body read, in bytes; the default is
// DefaultMaxBodySize. A larger one is refused before it is hashed.
func WithMaxBodySize(n int64) Option {
	return func(o *options) { o.maxBody = n }
}

// WithLogger sets the logger for deliveries. A nil logger, the default,
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithRegisterer registers reconciler_webhook_requests_total on r. Without
// it the requests are counted but not exported.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.reg = r }
}

// Verifier authenticates push deliveries with a shared secret and refuses
// replays. It is safe for concurrent use.
type Verifier struct {
	secret     redacted // the HMAC key of GitHub and Gitea, GitLab's token
	signingKey redacted // the HMAC key of GitLab's signed deliveries
	providers  []string
	window     time.Duration
	maxBody    int64
	replay     *replayCache
	log        *slog.Logger
	metrics    *metrics
}

// New returns a Verifier for deliveries authenticated with secret, the
// value entered as the webhook's secret (GitHub, Gitea), secret token or
// signing token (GitLab; a "whsec_" signing token is decoded as Standard
// Webhooks says). Use at least 32 random bytes. secret is copied, and
// never logged nor put in an error.
func New(secret []byte, opts ...Option) (*Verifier, error) {
	o := options{
		providers: providers,
		window:    DefaultClockWindow,
		cacheSize: DefaultReplayCacheSize,
		maxBody:   DefaultMaxBodySize,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if len(secret) == 0 {
		return nil, errors.New("create webhook verifier: empty secret")
	}
	if len(o.providers) == 0 {
		return nil, errors.New("create webhook verifier: no provider accepted")
	}
	for _, p := range o.providers {
		if !slices.Contains(providers, p) {
			return nil, fmt.Errorf("create webhook verifier: unknown provider %q (want github, gitlab or gitea)", p)
		}
	}
	if o.window <= 0 || o.cacheSize < 1 || o.maxBody < 1 {
		return nil, errors.New("create webhook verifier: clock window, replay cache size and body size must be positive")
	}
	signingKey, err := stdSigningKey(secret)
	if err != nil {
		return nil, fmt.Errorf("create webhook verifier: %w", err)
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, fmt.Errorf("create webhook verifier: %w", err)
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{
		secret:     redacted(slices.Clone(secret)),
		signingKey: redacted(slices.Clone(signingKey)),
		providers:  slices.Clone(o.providers),
		window:     o.window,
		maxBody:    o.maxBody,
		replay:     newReplayCache(o.cacheSize),
		log:        log,
		metrics:    m,
	}, nil
}

// String describes v without its secret.
func (v *Verifier) String() string {
	return "webhook.Verifier{providers: " + strings.Join(v.providers, ",") + ", secret: [redacted]}"
}

// Verify authenticates one delivery and parses it, in this order: the
// request must name an accepted provider, be JSON, fit the size limit and
// carry a valid signature (nothing of the body is read before); then it is
// parsed, and its delivery ID must not be in the replay cache. An accepted
// delivery's ID is recorded, so a second Verify of it is refused.
//
// It returns ErrPing for a signed GitHub ping, and an *Error for a
// refusal.
func (v *Verifier) Verify(h http.Header, body []byte) (*Push, error) {
	provider, err := v.precheck(h)
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > v.maxBody {
		return nil, refuse(provider, ReasonTooLarge, "body over the size limit")
	}
	if err := v.authenticate(provider, h, body); err != nil {
		return nil, err
	}
	p, err := Parse(provider, h, body)
	if err != nil {
		if e, ok := errors.AsType[*Error](err); ok {
			e.authenticated = true
		}
		return nil, err
	}
	if v.replay.seen(provider+" "+p.Delivery, time.Now()) {
		return nil, &Error{Provider: provider, Reason: ReasonReplayed, detail: "delivery ID accepted before", authenticated: true}
	}
	return p, nil
}

// precheck looks at the headers only, so that Handler can refuse before
// reading a body.
func (v *Verifier) precheck(h http.Header) (string, error) {
	provider := providerOf(h)
	if provider == "" {
		return "", refuse("", ReasonUnsupportedEvent, "no provider's event header")
	}
	if !slices.Contains(v.providers, provider) {
		return provider, refuse(provider, ReasonUnsupportedEvent, "provider not accepted")
	}
	ct, _ := single(h, "Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return provider, refuse(provider, ReasonMalformed, "content type is not application/json")
	}
	return provider, nil
}

// providerOf names the provider by its event header. Gitea also sends
// GitHub's headers, so its own are looked for first.
func providerOf(h http.Header) string {
	switch {
	case len(h.Values("X-Gitea-Event")) > 0:
		return Gitea
	case len(h.Values("X-Gitlab-Event")) > 0:
		return GitLab
	case len(h.Values("X-GitHub-Event")) > 0:
		return GitHub
	}
	return ""
}

func (v *Verifier) authenticate(provider string, h http.Header, body []byte) error {
	switch provider {
	case GitHub:
		return v.checkHexMAC(provider, h, "X-Hub-Signature-256", parseGitHubSignature, body)
	case Gitea:
		return v.checkHexMAC(provider, h, "X-Gitea-Signature", parseGiteaSignature, body)
	case GitLab:
		if len(h.Values(headerStdSignature)) > 0 {
			return v.checkStdSignature(h, body)
		}
		token, ok := single(h, "X-Gitlab-Token")
		if !ok || token == "" {
			return refuse(GitLab, ReasonBadSignature, "missing X-Gitlab-Token or webhook-signature header")
		}
		if !tokenEqual(token, v.secret) {
			return refuse(GitLab, ReasonBadSignature, "X-Gitlab-Token is not the secret")
		}
		return nil
	}
	return refuse(provider, ReasonUnsupportedEvent, "unknown provider")
}

func (v *Verifier) checkHexMAC(provider string, h http.Header, header string, parse func(string) ([]byte, error), body []byte) error {
	value, ok := single(h, header)
	if !ok {
		return refuse(provider, ReasonBadSignature, "missing "+header+" header")
	}
	sum, err := parse(value)
	if err != nil {
		return refuse(provider, ReasonBadSignature, "malformed "+header+" header")
	}
	if !hmac.Equal(sum, mac(v.secret, body)) {
		return refuse(provider, ReasonBadSignature, header+" does not match the body")
	}
	return nil
}

// checkStdSignature checks a GitLab delivery signed as Standard Webhooks
// specifies: an HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>".
// The timestamp is checked only once the signature holds, so an
// unauthenticated request learns nothing of the clock.
func (v *Verifier) checkStdSignature(h http.Header, body []byte) error {
	header, _ := single(h, headerStdSignature)
	sums, err := parseStdSignatures(header)
	if err != nil {
		return refuse(GitLab, ReasonBadSignature, "malformed webhook-signature header")
	}
	id, okID := single(h, headerStdID)
	ts, okTS := single(h, headerStdTimestamp)
	if !okID || !validDelivery(id) || !okTS {
		return refuse(GitLab, ReasonBadSignature, "missing or malformed webhook-id or webhook-timestamp header")
	}
	unix, err := parseUnix(ts)
	if err != nil {
		return refuse(GitLab, ReasonBadSignature, "malformed webhook-timestamp header")
	}
	want := mac(v.signingKey, []byte(id), []byte("."), []byte(ts), []byte("."), body)
	match := false
	for _, s := range sums {
		// No early exit: every entry is compared.
		match = hmac.Equal(s, want) || match
	}
	if !match {
		return refuse(GitLab, ReasonBadSignature, "webhook-signature does not match")
	}
	if d := time.Since(time.Unix(unix, 0)); d > v.window || d < -v.window {
		return &Error{Provider: GitLab, Reason: ReasonReplayed, detail: "signed timestamp outside the clock window", authenticated: true}
	}
	return nil
}

// parseUnix reads Unix seconds written in decimal digits only.
func parseUnix(s string) (int64, error) {
	if s == "" || len(s) > 12 || strings.Trim(s, "0123456789") != "" {
		return 0, errSignatureFormat
	}
	return strconv.ParseInt(s, 10, 64)
}

// redacted holds key material and prints as "[redacted]" in every verb,
// so that a Verifier printed or logged by mistake leaks nothing.
type redacted []byte

func (redacted) String() string             { return "[redacted]" }
func (redacted) GoString() string           { return "[redacted]" }
func (redacted) LogValue() slog.Value       { return slog.StringValue("[redacted]") }
func (redacted) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }
