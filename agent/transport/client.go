package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/agent/statedir"
	"github.com/reconciler-dev/reconciler/vault"
)

// ClientConfig is what an agent's Client needs to know.
type ClientConfig struct {
	// Instance is the instance the agent manages.
	Instance string
	// URL is the reconciler's agent endpoint, https://host:port.
	URL string
	// Fallbacks are more endpoints of the same reconciler (its other
	// replicas). After a request that cannot reach an endpoint, or that
	// it answers 502, 503 or 504, the next request goes to the next one,
	// in turn.
	Fallbacks []string
	// RootCAs verifies the reconciler's certificate; nil uses the
	// system's roots.
	RootCAs *x509.CertPool
	// StateDir keeps the RPC keys and message counters.
	StateDir string
	// TokenFile holds the one-time enrollment token, for an agent that has
	// no key yet; it is removed once the key is stored.
	TokenFile string
	// Wait is how long a poll may be held when nothing changes: the
	// heartbeat interval (DefaultWait if zero).
	Wait time.Duration
	// AllowPlaintext lets an agent with no key and no token talk the
	// plaintext form, if the reconciler allows it too.
	AllowPlaintext bool
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithClientLogger sets the logger (nil, the default, discards).
func WithClientLogger(l *slog.Logger) ClientOption { return func(c *Client) { c.log = l } }

// WithClientRegisterer registers the client's RPC message counters.
func WithClientRegisterer(r prometheus.Registerer) ClientOption {
	return func(c *Client) { c.reg = r }
}

// WithClientClock replaces time.Now for the session, for tests.
func WithClientClock(now func() time.Time) ClientOption { return func(c *Client) { c.now = now } }

// WithHTTPClient replaces the HTTP client (its TLS settings included),
// for tests and benchmarks.
func WithHTTPClient(h *http.Client) ClientOption { return func(c *Client) { c.http = h } }

// Client is the agent's side of the protocol: it implements
// agent.Transport. It is safe for concurrent use, though an agent polls
// from one goroutine.
type Client struct {
	cfg      ClientConfig
	bases    []string     // the URL, then the fallbacks
	endpoint atomic.Int32 // the index in bases of the one in use
	http     *http.Client
	dir      *statedir.Dir
	log      *slog.Logger
	reg      prometheus.Registerer
	now      func() time.Time

	pollMu sync.Mutex // one poll at a time: the request ID and the key changes are per exchange

	mu       sync.Mutex
	metrics  *rpc.Metrics
	keys     *rpc.Keyring
	stored   keyFile // what the state directory holds, kept in step with keys
	session  *rpc.Session
	reserved uint64 // send counters up to this one are reserved on disk
}

var _ agent.Transport = (*Client)(nil)

// NewClient returns the client for cfg, resuming the keys and message
// counters its state directory holds.
func NewClient(cfg ClientConfig, opts ...ClientOption) (*Client, error) {
	var bases []string
	for _, raw := range append([]string{cfg.URL}, cfg.Fallbacks...) {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("new agent transport: reconciler URL %q is not https://host:port", raw)
		}
		bases = append(bases, strings.TrimSuffix(raw, "/"))
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	cfg.Wait = min(cfg.Wait, MaxWait)
	c := &Client{cfg: cfg, bases: bases, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			IdleConnTimeout:     2 * MaxWait,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	var err error
	if c.dir, err = statedir.Open(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("new agent transport: %w", err)
	}
	if c.keys, c.stored, err = loadKeyring(c.dir, cfg.Instance); err != nil {
		return nil, fmt.Errorf("new agent transport: %w", err)
	}
	sent, received, err := loadCounters(c.dir)
	if err != nil {
		return nil, fmt.Errorf("new agent transport: %w", err)
	}
	c.reserved = sent // the next seal writes a new reservation
	c.metrics = rpc.NewMetrics(c.reg)
	if c.session, err = c.newSession(c.keys, sent, received); err != nil {
		return nil, fmt.Errorf("new agent transport: %w", err)
	}
	return c, nil
}

func (c *Client) newSession(keys *rpc.Keyring, sent, received uint64) (*rpc.Session, error) {
	return rpc.NewSession(rpc.SideAgent, keys,
		rpc.WithWatermarks(sent, received), rpc.WithPlaintextAllowed(c.cfg.AllowPlaintext),
		rpc.WithMetrics(c.metrics), rpc.WithLogger(c.log), rpc.WithClock(c.now))
}

// current returns the keyring and the session in use: enrollment may
// replace both.
func (c *Client) current() (*rpc.Keyring, *rpc.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys, c.session
}

// KeyVersion returns the RPC key version the client seals with (0: none).
func (c *Client) KeyVersion() uint32 {
	keys, _ := c.current()
	return keys.Current()
}

// RefusedError is the reconciler's refusal of a request: the HTTP status
// and its reason (an rpc result label such as "stale", or an enrollment
// result such as "no_token").
type RefusedError struct {
	Op     string // "poll" or "enroll"
	Code   int
	Reason string
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("the reconciler refused the %s: %d %s", e.Op, e.Code, e.Reason)
	switch e.Reason {
	case rpc.ResultStale:
		msg += " (this host's clock is off from the reconciler's: check NTP)"
	case rpc.ResultPlaintextRefused:
		msg += " (the instance has an RPC key: give the agent an enrollment token with reconciler agent bootstrap)"
	case rpc.ResultTampered, rpc.ResultUnknownKey:
		msg += " (the agent's key is not the instance's: re-enroll it with reconciler agent bootstrap)"
	case "no_token", "bad_proof":
		msg += " (the enrollment token is used, wrong or missing on the reconciler: run reconciler agent bootstrap again)"
	case "unknown_instance":
		msg += " (the reconciler does not manage this instance: check the instance name in the agent's config)"
	case "no_key":
		msg += " (the reconciler holds no RPC key for the instance yet: enable rpcEncryption for it, or set allowPlaintext where plaintext is allowed)"
	case rpc.ResultReplay:
		msg += " (another agent for this instance is running somewhere, or this host's clock went back)"
	case "too_large", "bad_payload":
		msg += " (the agent and the reconciler speak different protocol versions: upgrade the older one)"
	}
	return msg
}

// Poll implements agent.Transport: it reports s and waits for desired
// state above s.Generation. An agent with no key and a token file
// enrolls first.
func (c *Client) Poll(ctx context.Context, s agent.Status) (*agent.Desired, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if keys, _ := c.current(); !keys.HasKey() && c.cfg.TokenFile != "" {
		if err := c.enroll(ctx); err != nil && !(isNotExist(err) && c.cfg.AllowPlaintext) {
			return nil, err
		}
	}
	keys, session := c.current()
	s.KeyVersion = keys.Current()
	id := make([]byte, requestIDSize)
	rand.Read(id)
	payload, err := json.Marshal(pollRequest{ID: id, WaitMS: c.cfg.Wait.Milliseconds(), Status: s})
	if err != nil {
		return nil, fmt.Errorf("poll reconciler: %w", err)
	}
	msg, err := session.Seal(payload)
	if errors.Is(err, rpc.ErrNoKey) {
		return nil, fmt.Errorf("poll reconciler: the agent has no RPC key: set enrollmentTokenFile to the token reconciler agent bootstrap made (or allowPlaintext, if the reconciler allows it): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("poll reconciler: %w", err)
	}
	if err := c.reserveCounters(); err != nil {
		return nil, err
	}
	// The reconciler holds the poll for up to Wait; give the exchange
	// that long plus time to travel.
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Wait+30*time.Second)
	defer cancel()
	body, err := c.post(ctx, "poll", pollPath(c.cfg.Instance), "application/octet-stream", msg, rpc.MaxMessage)
	if err != nil {
		return nil, c.afterRefusal(ctx, keys, err)
	}
	h, payload, err := session.Open(body)
	if err != nil {
		return nil, fmt.Errorf("open reconciler reply: %w", err)
	}
	var reply pollReply
	if err := json.Unmarshal(payload, &reply); err != nil {
		return nil, fmt.Errorf("read reconciler reply: %w", err)
	}
	if subtle.ConstantTimeCompare(reply.ID, id) != 1 {
		return nil, errors.New("read reconciler reply: it answers another request (withheld and replayed?): refused")
	}
	if err := c.keysAfterReply(ctx, h, reply.NextKey); err != nil {
		return nil, err
	}
	if reply.Desired == nil {
		return nil, nil
	}
	return reply.Desired.desired(), nil
}

// post sends one request and returns the reply body of a 200, or a
// *RefusedError.
func (c *Client) post(ctx context.Context, op, path, contentType string, body []byte, limit int64) ([]byte, error) {
	at := c.endpoint.Load() % int32(len(c.bases))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.bases[at]+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s reconciler: %w", op, err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.endpoint.CompareAndSwap(at, (at+1)%int32(len(c.bases))) // try the next replica next time
		}
		return nil, fmt.Errorf("%s reconciler: %w", op, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		c.endpoint.CompareAndSwap(at, (at+1)%int32(len(c.bases)))
	}
	if resp.StatusCode != http.StatusOK {
		// A refusal's body is a short reason label; keep it short and
		// printable, whatever a middlebox put there.
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		return nil, &RefusedError{Op: op, Code: resp.StatusCode, Reason: printable(string(text))}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s reconciler: read reply: %w", op, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s reconciler: reply above %d bytes", op, limit)
	}
	return data, nil
}

func printable(s string) string {
	s = strings.TrimSpace(s)
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == ' ' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, s)
}

// enroll trades the token file for the instance's key, sealed to a key
// pair made here; it stores the key, then removes the token file.
func (c *Client) enroll(ctx context.Context) error {
	token, err := readTokenFile(c.cfg.TokenFile)
	if err != nil {
		return err
	}
	req, priv, err := rpc.NewKeyRequest(c.cfg.Instance, token)
	if err != nil {
		return fmt.Errorf("enroll with the reconciler: %w", err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("enroll with the reconciler: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	delivery, err := c.post(ctx, "enroll", enrollPath(c.cfg.Instance), "application/json", body, 1<<10)
	if err != nil {
		return err
	}
	version, key, err := rpc.OpenKey(priv, c.cfg.Instance, token, delivery)
	if err != nil {
		return fmt.Errorf("enroll with the reconciler: %w", err)
	}
	// A fresh keyring: whatever the agent held before, the token makes
	// the delivered key the instance's.
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.replaceKeys(keyFile{Current: version, Keys: map[uint32][]byte{version: key.Bytes()}}); err != nil {
		return fmt.Errorf("enroll with the reconciler: %w", err)
	}
	if err := removeFile(c.cfg.TokenFile); err != nil {
		c.log.WarnContext(ctx, "cannot remove the used enrollment token file", "file", c.cfg.TokenFile, "error", err)
	}
	c.log.InfoContext(ctx, "enrolled: RPC messages are sealed from now on", "key_version", version)
	return nil
}

// afterRefusal handles a poll the reconciler refused. When it refuses the
// agent's key (tampered, or a version it does not hold: its key store was
// restored from an old backup, or the instance was re-keyed) and the
// operator has put a new enrollment token on the host, the agent enrolls
// again, so the next poll uses the key the reconciler holds. It returns
// the refusal either way, for the agent to back off and retry.
func (c *Client) afterRefusal(ctx context.Context, keys *rpc.Keyring, err error) error {
	var refused *RefusedError
	if !errors.As(err, &refused) || !keys.HasKey() ||
		(refused.Reason != rpc.ResultTampered && refused.Reason != rpc.ResultUnknownKey) {
		return err
	}
	if refused.Reason == rpc.ResultUnknownKey {
		if ok, ferr := c.fallBack(ctx, keys); ferr != nil || ok {
			return errors.Join(err, ferr)
		}
	}
	if c.cfg.TokenFile == "" {
		return err
	}
	if _, statErr := os.Stat(c.cfg.TokenFile); statErr != nil {
		return err
	}
	c.log.WarnContext(ctx, "the reconciler refuses this agent's RPC key; enrolling again with the token file", "result", refused.Reason)
	if eerr := c.enroll(ctx); eerr != nil {
		return errors.Join(err, eerr)
	}
	return fmt.Errorf("%w; enrolled again, the next poll uses the new key", err)
}

// fallBack handles a rotation the reconciler forgot: it restarted without
// the new key the agent already seals under. If the agent still holds the
// older version it goes back to it (dropping the newer, which the
// reconciler does not have; its next rotation delivers a new one) and
// reports true.
func (c *Client) fallBack(ctx context.Context, keys *rpc.Keyring) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	versions, cur := keys.Versions(), keys.Current()
	if len(versions) != 2 || versions[1] != cur || keys != c.keys {
		return false, nil
	}
	old := versions[0]
	file := keyFile{Current: old, Retired: c.stored.Retired, Keys: map[uint32][]byte{old: c.stored.Keys[old]}}
	if err := c.replaceKeys(file); err != nil {
		return false, err
	}
	c.log.WarnContext(ctx, "the reconciler does not know the new RPC key; back to the previous one", "key_version", old, "dropped", cur)
	return true, nil
}

// replaceKeys makes file the agent's keys, on disk and in a new keyring
// and session; c.mu is held. The send counter goes on; the receive window
// starts afresh (replies are bound to their request by ID).
func (c *Client) replaceKeys(file keyFile) error {
	ring := rpc.NewKeyring(c.cfg.Instance)
	if err := ring.Add(file.Current, vault.Secret(file.Keys[file.Current])); err != nil {
		return fmt.Errorf("replace RPC keys: %w", err)
	}
	sent, _ := c.session.Watermarks()
	session, err := c.newSession(ring, sent, 0)
	if err != nil {
		return fmt.Errorf("replace RPC keys: %w", err)
	}
	if err := saveKeyring(c.dir, file); err != nil {
		return err
	}
	c.keys, c.session, c.stored = ring, session, file
	return nil
}

// keysAfterReply follows a rotation: a reply sealed under the current
// version retires the older one (the reconciler has switched), and a next
// key in the reply is stored and promoted, so the next poll, sealed under
// it, acknowledges it.
func (c *Client) keysAfterReply(ctx context.Context, h rpc.Header, next *keyWire) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.keys.Current()
	if h.Sealed() && h.KeyVersion == cur && len(c.stored.Keys) > 1 {
		file := c.stored.without(cur)
		if err := saveKeyring(c.dir, file); err != nil {
			return err
		}
		for v := range c.stored.Keys {
			if v != cur {
				c.keys.Retire(v)
			}
		}
		c.stored = file
		c.log.InfoContext(ctx, "the reconciler switched to the new RPC key; the old one is retired", "key_version", cur)
	}
	if next == nil || next.Version <= cur || c.stored.Keys[next.Version] != nil {
		return nil
	}
	if !h.Sealed() {
		return errors.New("read reconciler reply: a key offered in plaintext: refused")
	}
	file := c.stored.with(next.Version, next.Key)
	if err := saveKeyring(c.dir, file); err != nil {
		return err
	}
	if err := c.keys.Add(next.Version, next.Key); err != nil {
		return fmt.Errorf("read reconciler reply: new key: %w", err)
	}
	if err := c.keys.Promote(next.Version); err != nil {
		return fmt.Errorf("read reconciler reply: new key: %w", err)
	}
	c.stored = file
	c.log.InfoContext(ctx, "received a new RPC key; acknowledging it", "key_version", next.Version)
	return nil
}

// counterReservation is how many send counters one write to the state
// directory reserves: at a poll every 30 seconds, three weeks' worth.
const counterReservation = 1 << 16

// reserveCounters keeps the send counter below a reservation on disk, so
// that an agent restarted at once (in the same second, or after its clock
// stepped back) starts above every counter it used, without an fsync per
// message. The received counter rides along; losing it is harmless, since
// a reply must echo the ID of a request made by this process.
func (c *Client) reserveCounters() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, received := c.session.Watermarks()
	if sent < c.reserved {
		return nil
	}
	next := sent + counterReservation
	if err := saveCounters(c.dir, next, received); err != nil {
		return err
	}
	c.reserved = next
	return nil
}
