package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pushes collects what Handler hands to onPush.
type pushes struct {
	mu  sync.Mutex
	got []Push
}

func (p *pushes) onPush(_ context.Context, push Push) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, push)
}

func (p *pushes) all() []Push {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Push(nil), p.got...)
}

func TestHandlerRoundTrip(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := newVerifier(t, WithRegisterer(reg))
	var got pushes
	srv := httptest.NewServer(v.Handler(got.onPush))
	defer srv.Close()

	pushBody := readTestdata(t, "github-push.json")
	pingBody := readTestdata(t, "github-ping.json")
	ping := signed(GitHub, []byte(canary), pingBody, "4a8c0d5e-ping")
	ping.Set("X-GitHub-Event", "ping")
	forged := signed(GitHub, []byte("not the secret"), pushBody, "forged-1")
	big := bytes.Repeat([]byte("x"), DefaultMaxBodySize+1)

	steps := []struct {
		name       string
		method     string
		headers    http.Header
		body       io.Reader
		wantStatus int
		wantBody   string
		provider   string
		result     string
	}{
		{"a push is accepted", http.MethodPost, signed(GitHub, []byte(canary), pushBody, githubDelivery), bytes.NewReader(pushBody), 202, "accepted\n", GitHub, "accepted"},
		{"its replay is refused", http.MethodPost, signed(GitHub, []byte(canary), pushBody, githubDelivery), bytes.NewReader(pushBody), 403, "replayed\n", GitHub, "replayed"},
		{"a ping is answered", http.MethodPost, ping, bytes.NewReader(pingBody), 200, "ok\n", GitHub, "ping"},
		{"a forgery is refused", http.MethodPost, forged, bytes.NewReader(pushBody), 401, "bad_signature\n", GitHub, "bad_signature"},
		{"a body over the limit is refused by its length", http.MethodPost, signed(GitHub, []byte(canary), big, "big-1"), bytes.NewReader(big), 413, "too_large\n", GitHub, "too_large"},
		// io.MultiReader hides the length, so the body is sent chunked.
		{"a chunked body over the limit is refused as it is read", http.MethodPost, signed(Gitea, []byte(canary), big, "big-2"), io.MultiReader(bytes.NewReader(big)), 413, "too_large\n", Gitea, "too_large"},
		{"a non-push event is refused", http.MethodPost, func() http.Header {
			h := signed(GitLab, []byte(canary), nil, "mr-1")
			h.Set("X-Gitlab-Event", "Merge Request Hook")
			return h
		}(), strings.NewReader("{}"), 400, "unsupported_event\n", GitLab, "unsupported_event"},
		{"a request from no provider is refused", http.MethodPost, http.Header{"Content-Type": {"application/json"}}, strings.NewReader("{}"), 400, "unsupported_event\n", "unknown", "unsupported_event"},
		{"a GET is refused", http.MethodGet, signed(GitHub, []byte(canary), nil, "get-1"), nil, 405, "malformed\n", GitHub, "malformed"},
	}
	for _, s := range steps {
		req, err := http.NewRequestWithContext(t.Context(), s.method, srv.URL+"/v1/webhooks/git", s.body)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range s.headers {
			req.Header[k] = vs
		}
		before := testutil.ToFloat64(v.metrics.requests.WithLabelValues(s.provider, s.result))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.wantStatus || string(b) != s.wantBody {
			t.Errorf("%s: answered %d %q, want %d %q", s.name, resp.StatusCode, b, s.wantStatus, s.wantBody)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", s.name, ct)
		}
		if after := testutil.ToFloat64(v.metrics.requests.WithLabelValues(s.provider, s.result)); after != before+1 {
			t.Errorf("%s: requests{provider=%q,result=%q} went from %v to %v, want +1", s.name, s.provider, s.result, before, after)
		}
	}

	want := []Push{{
		Provider:   GitHub,
		Delivery:   githubDelivery,
		Repository: fleetOn("github.com"),
		Ref:        "refs/heads/main",
		Before:     "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
		After:      "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		Changed:    []string{"instances/billing-db.yaml", "instances/legacy-db.yaml", "instances/orders-db.yaml"},
	}}
	if diff := cmp.Diff(want, got.all()); diff != "" {
		t.Errorf("onPush received (-want +got):\n%s", diff)
	}
}

func TestMetricsArePreCreated(t *testing.T) {
	reg := prometheus.NewRegistry()
	newVerifier(t, WithRegisterer(reg))
	// 4 providers (with unknown) times 7 results (accepted, ping, 5 reasons).
	if n, err := testutil.GatherAndCount(reg, "reconciler_webhook_requests_total"); err != nil || n != 28 {
		t.Errorf("series = %d, %v; want 28 at zero", n, err)
	}
	if _, err := New([]byte(canary), WithRegisterer(reg)); err == nil {
		t.Error("a second Verifier on the same registry registered twice")
	}
}

func TestHandlerNeedsOnPush(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Handler(nil) did not panic")
		}
	}()
	newVerifier(t).Handler(nil)
}

// TestCanaryNeverLeaks sends every refusal and every kind of accepted
// delivery, some carrying the secret in their headers as GitLab's token
// mode does, and checks that no log line, error, response or metric holds
// the secret in any common encoding.
func TestCanaryNeverLeaks(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	v := newVerifier(t, WithLogger(log), WithRegisterer(reg))
	h := v.Handler(func(context.Context, Push) {})

	var seen strings.Builder
	send := func(hdr http.Header, body []byte) {
		// Verify first on a twin, for its error, then through the handler.
		twin := newVerifier(t)
		if _, err := twin.Verify(hdr, body); err != nil {
			fmt.Fprintf(&seen, "%v\n%+v\n%#v\n", err, err, err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/git", bytes.NewReader(body))
		req.Header = hdr.Clone()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Fprintf(&seen, "%d %v %s\n", rec.Code, rec.Header(), rec.Body.String())
	}
	for _, provider := range providers {
		body := readTestdata(t, testdataFor(provider))
		send(signed(provider, []byte(canary), body, deliveryFor(provider)), body)
		send(signed(provider, []byte(canary), body, deliveryFor(provider)), body) // replay
	}
	for _, tt := range refusals {
		body := readTestdata(t, testdataFor(tt.provider))
		send(tt.edit(signed(tt.provider, []byte(canary), body, "r-"+strings.ReplaceAll(tt.name, " ", "-")), body))
	}
	// Bodies and headers that carry the secret themselves. (A delivery ID
	// is logged as sent: a sender that makes the secret its delivery ID
	// has leaked it already.)
	body := bytes.ReplaceAll(readTestdata(t, "gitlab-push.json"), []byte("platform/fleet"), []byte(canary))
	leaky := signed(GitLab, []byte(canary), body, "leaky-1")
	leaky.Set("X-GitHub-Delivery", canary)
	leaky.Set("Webhook-Id", canary)
	send(leaky, body)
	leaky = signed(GitHub, []byte(canary), []byte("{"+canary), "leaky-2")
	send(leaky, []byte("{"+canary))
	leaky = signed(Gitea, []byte(canary), []byte(`{"ref":"`+canary+`"}`), "leaky-3")
	send(leaky, []byte(`{"ref":"`+canary+`"}`))

	fmt.Fprintf(&seen, "%v %+v %s %#v %x %d\n", v, v, v, v, v.secret, v.secret)
	log.Info("verifier", "v", v, "secret", v.secret)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		seen.WriteString(mf.String())
	}
	seen.Write(logs.Bytes())

	all := seen.String()
	if !strings.Contains(all, "bad_signature") || !strings.Contains(logs.String(), `"delivery":"`+githubDelivery+`"`) {
		t.Fatalf("the scan saw too little:\n%s", all)
	}
	for name, enc := range map[string]string{
		"plain":      canary,
		"hex":        hex.EncodeToString([]byte(canary)),
		"base64":     base64.StdEncoding.EncodeToString([]byte(canary)),
		"base64 url": base64.RawURLEncoding.EncodeToString([]byte(canary)),
		"a prefix":   canary[:16],
	} {
		if i := strings.Index(all, enc); i >= 0 {
			t.Errorf("the secret (%s) leaked: ...%s...", name, all[max(0, i-80):min(len(all), i+len(enc)+40)])
		}
	}
}

func TestHandlerLogsOnlyProviderDeliveryAndResult(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	v := newVerifier(t, WithLogger(log))
	h := v.Handler(func(context.Context, Push) {})
	body := readTestdata(t, "gitea-push.json")
	for _, hdr := range []http.Header{
		signed(Gitea, []byte(canary), body, giteaDelivery),
		signed(Gitea, []byte(canary), body, giteaDelivery),
		signed(Gitea, []byte("wrong"), body, "has spaces so not logged"),
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/git", bytes.NewReader(body))
		req.Header = hdr
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	want := `level=INFO msg="git webhook" provider=gitea delivery=` + giteaDelivery + ` result=accepted
level=WARN msg="git webhook" provider=gitea delivery=` + giteaDelivery + ` result=replayed
level=DEBUG msg="git webhook" provider=gitea delivery="" result=bad_signature
`
	if diff := cmp.Diff(want, logs.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

func TestHandlerCallsOnPushWithTheRequestContext(t *testing.T) {
	v := newVerifier(t)
	type key struct{}
	var got any
	h := v.Handler(func(ctx context.Context, _ Push) { got = ctx.Value(key{}) })
	body := readTestdata(t, "github-push.json")
	ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), key{}, "request"), time.Minute)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/webhooks/git", bytes.NewReader(body))
	req.Header = signed(GitHub, []byte(canary), body, githubDelivery)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || got != "request" {
		t.Errorf("answered %d, onPush saw %v; want 202 and the request's context", rec.Code, got)
	}
}
