package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/rpc"
)

func TestEnrolledAgentReceivesDesiredStateSealed(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	if c.KeyVersion() != 1 {
		t.Fatalf("key version after enrollment = %d, want 1", c.KeyVersion())
	}
	// The first request was the enrollment; every poll since is sealed.
	if got := f.box.lastRequest(); string(got[:3]) != "RCS" {
		t.Errorf("poll after enrollment starts %q, want the sealed magic RCS", got[:3])
	}
	want := &agent.Desired{Generation: 3, SSL: true, Bundle: testBundle("0a:0b", []byte("-----BEGIN PRIVATE KEY-----"))}
	if err := f.server.Publish("orders-db", *want); err != nil {
		t.Fatal(err)
	}
	got, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Pending, Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("desired state (-want +got):\n%s", diff)
	}
	// An agent already at that generation gets nothing when the poll ends.
	got, err = c.Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Active, Generation: 3, Verified: true})
	if err != nil || got != nil {
		t.Errorf("poll at the published generation = %+v, %v; want nothing", got, err)
	}
	obs, _ := f.server.Observed("orders-db")
	if obs.Status.Phase != agent.Active || obs.Status.Generation != 3 || obs.Status.KeyVersion != 1 || obs.LastSeen.IsZero() {
		t.Errorf("server observed %+v, want the agent's last status: Active at generation 3, key version 1", obs)
	}
	// The token is used up on both sides.
	if _, err := f.tokens.Token(context.Background(), "orders-db"); !isNotExist(err) {
		t.Errorf("server's token after the first sealed poll: %v, want it consumed", err)
	}
	if _, err := os.Stat(c.cfg.TokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent's token file after enrollment: %v, want it removed", err)
	}
	info, err := os.Stat(filepath.Join(c.cfg.StateDir, keysFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}

func TestPublishWakesAWaitingPoll(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	c.cfg.Wait = time.Minute
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.server.Publish("orders-db", agent.Desired{Generation: 1})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := c.Poll(ctx, agent.Status{Instance: "orders-db"})
	if err != nil || got == nil || got.Generation != 1 {
		t.Fatalf("poll = %+v, %v; want generation 1 as soon as it is published", got, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("poll returned after %v: the publish did not wake it", d)
	}
}

func TestRestartedAgentKeepsItsKeyAndCounters(t *testing.T) {
	f := newFixture(t)
	// Both processes see the same second: the clock alone would start the
	// restarted one on counters already used; the reservation must not.
	frozen := time.Now()
	clock := WithClientClock(func() time.Time { return frozen })
	if err := f.server.Register("orders-db", Keys{Current: key(1, 0x11)}); err != nil {
		t.Fatal(err)
	}
	token, _ := f.tokens.Issue("orders-db")
	c := f.client("orders-db", f.host(token), clock)
	for range 3 {
		if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
			t.Fatal(err)
		}
	}
	again := f.client("orders-db", hostDirs{c.cfg.StateDir, c.cfg.TokenFile}, clock)
	if again.KeyVersion() != 1 {
		t.Fatalf("restarted agent's key version = %d, want 1", again.KeyVersion())
	}
	if _, err := again.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatalf("poll after a restart: %v", err)
	}
	// And the state directory holds what it needs, tightly.
	info, err := os.Stat(c.cfg.StateDir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, mode %v; want 0700", err, info.Mode().Perm())
	}
}

func TestHostileMessagesAreRefused(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	f.enrolled("billing-db", key(1, 0x22))
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatal(err)
	}
	captured := f.box.lastRequest()
	flip := func(i int) []byte {
		b := append([]byte(nil), captured...)
		b[i] ^= 0x01
		return b
	}
	plaintext := append([]byte("RCP"), captured[3:]...)
	plaintext[5], plaintext[6], plaintext[7], plaintext[8] = 0, 0, 0, 0
	for _, tc := range []struct {
		name   string
		path   string
		body   []byte
		code   int
		reason string
	}{
		{"a replayed poll", pollPath("orders-db"), captured, 403, rpc.ResultReplay},
		{"a flipped bit in the ciphertext", pollPath("orders-db"), flip(len(captured) - 20), 403, rpc.ResultTampered},
		{"a flipped bit in the counter", pollPath("orders-db"), flip(15), 403, rpc.ResultTampered},
		{"a truncated poll", pollPath("orders-db"), captured[:30], 400, rpc.ResultMalformed},
		{"another instance's poll", pollPath("billing-db"), captured, 403, rpc.ResultWrongInstance},
		{"plaintext to an instance with a key", pollPath("orders-db"), plaintext, 403, rpc.ResultPlaintextRefused},
		{"the server's own reply reflected", pollPath("orders-db"), f.box.lastReply(), 403, rpc.ResultWrongDirection},
		{"an unknown instance", pollPath("nobody-db"), captured, 404, "unknown_instance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := f.post(tc.path, tc.body)
			if code != tc.code || reason != tc.reason {
				t.Errorf("got %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
		})
	}
	// The agent itself still gets through.
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Errorf("honest poll after the attacks: %v", err)
	}
	// Each refusal is counted by its reason.
	for _, reason := range []string{rpc.ResultReplay, rpc.ResultTampered, rpc.ResultMalformed, rpc.ResultWrongInstance,
		rpc.ResultPlaintextRefused, rpc.ResultWrongDirection} {
		if n := counted(t, f, reason); n < 1 {
			t.Errorf("reconciler_rpc_messages_total{direction=to_reconciler,result=%s} = %v, want the refusal counted", reason, n)
		}
	}
}

// counted reads the server's count of messages opened with result.
func counted(t *testing.T, f *fixture, result string) float64 {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "reconciler_rpc_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["direction"] == "to_reconciler" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestAnotherInstancesKeyIsRefused: the owner of one host, holding its
// instance's key, poses as another instance.
func TestAnotherInstancesKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	orders := f.enrolled("orders-db", key(1, 0x11))
	f.enrolled("billing-db", key(1, 0x22))
	stolen, err := os.ReadFile(filepath.Join(orders.cfg.StateDir, keysFile))
	if err != nil {
		t.Fatal(err)
	}
	h := f.host(nil)
	os.MkdirAll(h.state, 0o700)
	os.WriteFile(filepath.Join(h.state, keysFile), stolen, 0o600)
	impostor := f.client("billing-db", h)
	_, err = impostor.Poll(context.Background(), agent.Status{Instance: "billing-db"})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != rpc.ResultTampered {
		t.Fatalf("poll as billing-db under orders-db's key: %v, want refused as tampered", err)
	}
	if obs, _ := f.server.Observed("billing-db"); obs.Status.Phase != agent.Pending {
		t.Errorf("the impostor's status was recorded: %+v", obs.Status)
	}
}

func TestReorderedPollsAreAcceptedOnce(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	var held [][]byte
	f.box.rewriteRq = func(_ string, body []byte) []byte {
		held = append(held, body)
		return []byte("dropped") // the middlebox holds the real ones back
	}
	for range 2 {
		c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	}
	f.box.rewriteRq = nil
	for i, body := range [][]byte{held[1], held[0]} {
		if code, reason := f.post(pollPath("orders-db"), body); code != 200 {
			t.Errorf("held poll %d delivered out of order: %d %s, want accepted", 1-i, code, reason)
		}
	}
	if code, reason := f.post(pollPath("orders-db"), held[0]); code != 403 || reason != rpc.ResultReplay {
		t.Errorf("held poll delivered again: %d %s, want 403 replay", code, reason)
	}
}

func TestAReplyWithheldAndReplayedIsRefused(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	f.server.Publish("orders-db", agent.Desired{Generation: 5, SSL: false})
	var old []byte
	f.box.rewriteRp = func(_ string, body []byte) []byte {
		if old == nil {
			old = body
			return []byte("lost")
		}
		return old // the withheld reply, delivered to the next request
	}
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err == nil {
		t.Fatal("a garbled reply was accepted")
	}
	_, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	if err == nil || !strings.Contains(err.Error(), "answers another request") {
		t.Fatalf("a reply to an earlier request, delivered to a later one: %v, want it refused", err)
	}
}

func TestAClockFarOffIsRefusedWithAHint(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	skewed := f.client("orders-db", hostDirs{c.cfg.StateDir, ""}, WithClientClock(func() time.Time { return time.Now().Add(time.Hour) }))
	_, err := skewed.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != rpc.ResultStale {
		t.Fatalf("poll from a clock an hour ahead: %v, want a refusal for a stale message", err)
	}
	if !strings.Contains(err.Error(), "NTP") {
		t.Errorf("error %q does not tell the operator to check the clock", err)
	}
}

func TestEnrollmentRefusals(t *testing.T) {
	f := newFixture(t)
	if err := f.server.Register("orders-db", Keys{Current: key(1, 0x11)}); err != nil {
		t.Fatal(err)
	}
	wrong, _ := rpc.NewBootstrapToken()
	for _, tc := range []struct {
		name   string
		issue  bool
		reason string
	}{
		{"no token issued", false, "no_token"},
		{"a token the reconciler did not issue", true, "bad_proof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.issue {
				f.tokens.Issue("orders-db")
			}
			c := f.client("orders-db", f.host(wrong))
			_, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Op != "enroll" || refused.Reason != tc.reason {
				t.Fatalf("enrollment: %v, want refused with %s", err, tc.reason)
			}
			if c.KeyVersion() != 0 {
				t.Errorf("a refused agent holds key version %d", c.KeyVersion())
			}
		})
	}

	// A keyless agent without a token does not fall back to plaintext.
	c := f.client("orders-db", f.host(nil))
	c.cfg.TokenFile = ""
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); !errors.Is(err, rpc.ErrNoKey) {
		t.Errorf("keyless agent without plaintext: %v, want ErrNoKey", err)
	}
}

func TestTokenIsOneTime(t *testing.T) {
	f := newFixture(t)
	if err := f.server.Register("orders-db", Keys{Current: key(1, 0x11)}); err != nil {
		t.Fatal(err)
	}
	token, _ := f.tokens.Issue("orders-db")
	c := f.client("orders-db", f.host(token))
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tokens.Token(context.Background(), "orders-db"); !isNotExist(err) {
		t.Errorf("the stored token after enrollment: %v, want it consumed", err)
	}
	// The same token, kept by someone who copied the file before.
	thief := f.client("orders-db", f.host(token))
	_, err := thief.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != "no_token" {
		t.Errorf("enrollment with the used token: %v, want no_token", err)
	}

	// A second token, for a replacement host, works once too, although
	// the first agent keeps polling. (Two agents of one instance polling
	// at once refuse each other's counters as replays; the replacement's
	// enrollment is what counts here.)
	second, _ := f.tokens.Issue("orders-db")
	replacement := f.client("orders-db", f.host(second))
	replacement.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	if replacement.KeyVersion() != 1 {
		t.Fatalf("replacement host holds key version %d after enrolling, want 1", replacement.KeyVersion())
	}
	c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	if _, err := f.tokens.Token(context.Background(), "orders-db"); !isNotExist(err) {
		t.Errorf("the second token after its enrollment: %v, want it consumed", err)
	}
	if _, err := f.client("orders-db", f.host(second)).Poll(context.Background(), agent.Status{Instance: "orders-db"}); !errors.As(err, &refused) || refused.Reason != "no_token" {
		t.Errorf("the second token used again: %v, want no_token", err)
	}
}

func TestALostEnrollmentReplyCanBeRetried(t *testing.T) {
	f := newFixture(t)
	if err := f.server.Register("orders-db", Keys{Current: key(1, 0x11)}); err != nil {
		t.Fatal(err)
	}
	token, _ := f.tokens.Issue("orders-db")
	c := f.client("orders-db", f.host(token))
	f.box.rewriteRp = func(path string, b []byte) []byte {
		if strings.HasSuffix(path, "/enroll") {
			return []byte("lost")
		}
		return b
	}
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err == nil {
		t.Fatal("enrollment with a garbled reply succeeded")
	}
	f.box.rewriteRp = nil
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatalf("retry within the grace period: %v", err)
	}
	// The first sealed poll ended the grace: the token works no more.
	var refused *RefusedError
	if _, err := f.client("orders-db", f.host(token)).Poll(context.Background(), agent.Status{Instance: "orders-db"}); !errors.As(err, &refused) || refused.Reason != "no_token" {
		t.Errorf("the token after the agent's first sealed poll: %v, want no_token", err)
	}
}

func TestPlaintextAgentsGetNoPrivateKey(t *testing.T) {
	f := newFixture(t, WithPlaintextAllowed(true))
	f.server.Register("legacy-db", Keys{AllowPlaintext: true})
	f.server.Register("strict-db", Keys{}) // keyless, but rpcEncryption wanted: no plaintext
	f.server.Publish("legacy-db", agent.Desired{Generation: 1, SSL: true, Bundle: testBundle("01", []byte("CANARY-PRIVATE-KEY"))})
	mk := func(name string) *Client {
		h := f.host(nil)
		c, err := NewClient(ClientConfig{Instance: name, URL: f.https.URL, RootCAs: f.roots, StateDir: h.state,
			Wait: 50 * time.Millisecond, AllowPlaintext: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	d, err := mk("legacy-db").Poll(context.Background(), agent.Status{Instance: "legacy-db"})
	if err != nil || d == nil {
		t.Fatalf("plaintext poll: %+v, %v", d, err)
	}
	if d.Bundle != nil || !strings.Contains(d.Withheld, "only sent sealed") {
		t.Errorf("a plaintext agent got bundle %v, withheld %q; want no bundle and the reason", d.Bundle != nil, d.Withheld)
	}
	if strings.Contains(string(f.box.lastReply()), "CANARY") || strings.Contains(string(f.box.lastReply()), "Q0FOQVJZ") {
		t.Error("the private key crossed the wire in a plaintext reply")
	}
	if obs, _ := f.server.Observed("legacy-db"); obs.Sealed || obs.LastSeen.IsZero() {
		t.Errorf("observed %+v: want the status recorded as unsealed", obs)
	}
	var refused *RefusedError
	if _, err := mk("strict-db").Poll(context.Background(), agent.Status{Instance: "strict-db"}); !errors.As(err, &refused) || refused.Reason != rpc.ResultPlaintextRefused {
		t.Errorf("plaintext for an instance that does not allow it: %v, want plaintext_refused", err)
	}
}

func TestPlaintextUpgradePath(t *testing.T) {
	f := newFixture(t, WithPlaintextAllowed(true))
	if err := f.server.Register("legacy-db", Keys{AllowPlaintext: true}); err != nil {
		t.Fatal(err)
	}
	h := f.host(nil)
	c, err := NewClient(ClientConfig{Instance: "legacy-db", URL: f.https.URL, RootCAs: f.roots, StateDir: h.state,
		TokenFile: h.token, Wait: 50 * time.Millisecond, AllowPlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	f.server.Publish("legacy-db", agent.Desired{Generation: 1})
	if d, err := c.Poll(context.Background(), agent.Status{Instance: "legacy-db"}); err != nil || d == nil {
		t.Fatalf("plaintext poll while both sides allow it: %+v, %v", d, err)
	}
	if got := f.box.lastRequest(); string(got[:3]) != "RCP" {
		t.Fatalf("keyless poll starts %q, want the plaintext magic", got[:3])
	}

	// The reconciler gives the instance a key: plaintext is a downgrade now.
	if err := f.server.Rotate("legacy-db", *key(1, 0x33)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Poll(context.Background(), agent.Status{Instance: "legacy-db", Generation: 1})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != rpc.ResultPlaintextRefused {
		t.Fatalf("plaintext poll after the instance got a key: %v, want plaintext_refused", err)
	}

	// The operator bootstraps the host; the agent enrolls and seals.
	token, _ := f.tokens.Issue("legacy-db")
	os.WriteFile(h.token, FormatToken(token), 0o600)
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "legacy-db", Generation: 1}); err != nil {
		t.Fatalf("poll after the token arrived: %v", err)
	}
	if c.KeyVersion() != 1 || string(f.box.lastRequest()[:3]) != "RCS" {
		t.Errorf("after enrollment: key version %d, last poll %q; want 1 and sealed", c.KeyVersion(), f.box.lastRequest()[:3])
	}
}

func TestKeyRotation(t *testing.T) {
	var promoted []uint32
	f := newFixture(t, WithKeyPromotedHook(func(_ context.Context, _ string, v uint32) { promoted = append(promoted, v) }))
	c := f.enrolled("orders-db", key(1, 0x11))
	oldPoll := func() []byte { // a poll under version 1, held back by an attacker
		f.box.rewriteRq = func(_ string, b []byte) []byte { return nil }
		c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
		f.box.rewriteRq = nil
		return f.box.lastRequest()
	}()

	if err := f.server.Rotate("orders-db", *key(2, 0x12)); err != nil {
		t.Fatal(err)
	}
	if err := f.server.Rotate("orders-db", *key(3, 0x13)); err == nil {
		t.Error("a second rotation before the first was acknowledged was accepted")
	}
	// Poll 1: the reply, sealed under v1, carries v2; the agent promotes it.
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatal(err)
	}
	if c.KeyVersion() != 2 {
		t.Fatalf("agent key version after the delivery = %d, want 2", c.KeyVersion())
	}
	if obs, _ := f.server.Observed("orders-db"); obs.KeyVersion != 1 || obs.NextKeyVersion != 2 {
		t.Errorf("server before the acknowledgement: seals %d, next %d; want 1 and 2", obs.KeyVersion, obs.NextKeyVersion)
	}
	// Poll 2: sealed under v2, the acknowledgement; the reply comes under v2.
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatal(err)
	}
	if obs, _ := f.server.Observed("orders-db"); obs.KeyVersion != 2 || obs.NextKeyVersion != 0 {
		t.Errorf("server after the acknowledgement: seals %d, next %d; want 2 and none", obs.KeyVersion, obs.NextKeyVersion)
	}
	if diff := cmp.Diff([]uint32{2}, promoted); diff != "" {
		t.Errorf("promotion hook calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint32{2}, c.keys.Versions()); diff != "" {
		t.Errorf("agent keyring after the reply under v2 (-want +got):\n%s", diff)
	}
	if code, reason := f.post(pollPath("orders-db"), oldPoll); code != 403 || reason != rpc.ResultUnknownKey {
		t.Errorf("a held-back poll under the retired key: %d %s, want 403 unknown_key_version", code, reason)
	}
	// A restart keeps only the new key.
	again := f.client("orders-db", hostDirs{c.cfg.StateDir, ""})
	if diff := cmp.Diff([]uint32{2}, again.keys.Versions()); diff != "" {
		t.Errorf("restarted agent's keyring (-want +got):\n%s", diff)
	}
	if _, err := again.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Errorf("restarted agent's poll: %v", err)
	}
}

func TestUnregisteredInstanceGets404(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	f.server.Unregister("orders-db")
	_, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code != 404 {
		t.Errorf("poll of an unregistered instance: %v, want 404", err)
	}
}

// TestAgentReEnrollsWhenTheReconcilerLostItsKey: the reconciler's key
// store was restored without this instance's key and gave it a new one.
// The agent's key is refused; once the operator puts a new token on the
// host, the agent enrolls again and gets through.
func TestAgentReEnrollsWhenTheReconcilerLostItsKey(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	f.server.Unregister("orders-db")
	if err := f.server.Register("orders-db", Keys{Current: key(1, 0x99)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Reason != rpc.ResultTampered {
		t.Fatalf("poll under the lost key: %v, want refused as tampered", err)
	}
	token, _ := f.tokens.Issue("orders-db")
	os.WriteFile(c.cfg.TokenFile, FormatToken(token), 0o600)
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err == nil || !strings.Contains(err.Error(), "enrolled again") {
		t.Fatalf("poll with a token on the host: %v, want the refusal and a new enrollment", err)
	}
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Fatalf("poll after enrolling again: %v", err)
	}
	again := f.client("orders-db", hostDirs{c.cfg.StateDir, ""})
	if _, err := again.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		t.Errorf("the new key did not survive a restart: %v", err)
	}
}

func TestRotationEdgeCases(t *testing.T) {
	t.Run("a version not above the current one is refused", func(t *testing.T) {
		f := newFixture(t)
		f.server.Register("orders-db", Keys{Current: key(5, 0x15)})
		for _, v := range []uint32{3, 5} {
			if err := f.server.Rotate("orders-db", *key(v, 0x20)); err == nil {
				t.Errorf("Rotate to version %d over version 5 was accepted", v)
			}
		}
	})
	t.Run("a reconciler restarted without the next key gets the agent back on the old one", func(t *testing.T) {
		f := newFixture(t)
		c := f.enrolled("orders-db", key(1, 0x11))
		f.server.Rotate("orders-db", *key(2, 0x12))
		if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil || c.KeyVersion() != 2 {
			t.Fatalf("delivery: %v, key version %d", err, c.KeyVersion())
		}
		// The reconciler restarts and forgot version 2 (it did not store it).
		f.server.Unregister("orders-db")
		f.server.Register("orders-db", Keys{Current: key(1, 0x11)}, rpc.WithWatermarks(1<<62, 0))
		var refused *RefusedError
		if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); !errors.As(err, &refused) || refused.Reason != rpc.ResultUnknownKey {
			t.Fatalf("poll under the forgotten key: %v, want unknown_key_version", err)
		}
		if c.KeyVersion() != 1 {
			t.Fatalf("agent key version after the refusal = %d, want back on 1", c.KeyVersion())
		}
		if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
			t.Errorf("poll under the old key: %v", err)
		}
		// And it can take a new rotation to version 2 again.
		f.server.Rotate("orders-db", *key(2, 0x22))
		c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
		c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
		if obs, _ := f.server.Observed("orders-db"); obs.KeyVersion != 2 || c.KeyVersion() != 2 {
			t.Errorf("after a new rotation: server %d, agent %d; want both on 2", obs.KeyVersion, c.KeyVersion())
		}
	})
}

func TestServerLimits(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	if code, reason := f.post(pollPath("orders-db"), make([]byte, maxPollBody+1)); code != 413 || reason != "too_large" {
		t.Errorf("a poll above %d bytes: %d %s, want 413 too_large", maxPollBody, code, reason)
	}
	c.cfg.Wait = time.Minute
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.server.Unregister("orders-db")
	}()
	_, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db"})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code != 404 {
		t.Errorf("a poll waiting while its instance is unregistered: %v, want 404", err)
	}
}

// TestFallbackEndpoints checks that an agent whose endpoint is gone, or
// answers that it cannot reach the leader, turns to the next replica.
func TestFallbackEndpoints(t *testing.T) {
	f := newFixture(t)
	if err := f.server.Register("orders-db", Keys{Current: key(1, 0x11)}); err != nil {
		t.Fatal(err)
	}
	token, err := f.tokens.Issue("orders-db")
	if err != nil {
		t.Fatal(err)
	}
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	dead.Close() // a replica that died: nothing listens
	busy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no leader yet", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	f.roots.AddCert(busy.Certificate())
	h := f.host(token)
	c, err := NewClient(ClientConfig{Instance: "orders-db", URL: dead.URL, Fallbacks: []string{busy.URL, f.https.URL},
		RootCAs: f.roots, StateDir: h.state, TokenFile: h.token, Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	status := agent.Status{Instance: "orders-db", Phase: agent.Pending}
	var errs []string
	for range 3 {
		_, err := c.Poll(context.Background(), status)
		errs = append(errs, fmt.Sprint(err))
	}
	if !strings.Contains(errs[0], "connect") || !strings.Contains(errs[1], "503") || errs[2] != "<nil>" {
		t.Errorf("polls through a dead replica, a busy one, then the leader = %q; want a connection error, a 503, then success", errs)
	}
	if c.KeyVersion() != 1 {
		t.Errorf("key version = %d, want 1: enrolled through the third endpoint", c.KeyVersion())
	}
	if _, err := NewClient(ClientConfig{Instance: "orders-db", URL: f.https.URL, Fallbacks: []string{"http://plain:8444"}, StateDir: t.TempDir()}); err == nil {
		t.Error("a plain http fallback was accepted")
	}
}

// TestDeliveredBundleIsDropped checks that the private key leaves the
// server's memory once the agent reports the generation it came in.
func TestDeliveredBundleIsDropped(t *testing.T) {
	f := newFixture(t)
	c := f.enrolled("orders-db", key(1, 0x11))
	if err := f.server.Publish("orders-db", agent.Desired{Generation: 2, SSL: true, Bundle: testBundle("0a:0b", []byte("-----BEGIN PRIVATE KEY-----"))}); err != nil {
		t.Fatal(err)
	}
	held := func() bool {
		inst := f.server.lookup("orders-db")
		inst.mu.Lock()
		defer inst.mu.Unlock()
		return inst.desired.Bundle != nil
	}
	got, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Active, Generation: 1})
	if err != nil || got == nil || got.Bundle == nil {
		t.Fatalf("poll = %+v, %v; want the bundle", got, err)
	}
	if !held() {
		t.Fatal("the bundle was dropped before the agent reported it")
	}
	if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Active, Generation: 2, SSL: true, Verified: true}); err != nil {
		t.Fatal(err)
	}
	if held() {
		t.Error("the server still holds the private key after the agent reported its generation")
	}
}

// TestEnrollmentBeforeTheKeyKeepsTheToken checks that an agent that comes
// before its instance has an RPC key is turned away without using up its
// token, and enrolls with it once the key is there.
func TestEnrollmentBeforeTheKeyKeepsTheToken(t *testing.T) {
	f := newFixture(t, WithEnrollWait(0))
	c := f.bootstrapped("orders-db", true)
	status := agent.Status{Instance: "orders-db", Phase: agent.Pending}
	if _, err := c.Poll(context.Background(), status); err == nil || !strings.Contains(err.Error(), "no_key") {
		t.Fatalf("enrollment before the key = %v, want no_key", err)
	}
	if _, err := f.tokens.Token(context.Background(), "orders-db"); err != nil {
		t.Fatalf("the token after a no_key refusal: %v, want it kept", err)
	}
	if err := f.server.Rotate("orders-db", *key(1, 0x11)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background(), status); err != nil {
		t.Fatalf("enrollment once the key is there: %v", err)
	}
	if c.KeyVersion() != 1 {
		t.Errorf("key version %d, want 1", c.KeyVersion())
	}
}

// TestEnrollmentWaitsForTheKey checks that an agent with a good token
// that comes before its instance is registered, or before it has a key,
// is held and answered as soon as the key is there: one request, no
// refusal to retry after.
func TestEnrollmentWaitsForTheKey(t *testing.T) {
	for _, registered := range []bool{false, true} {
		t.Run(fmt.Sprintf("registered=%v", registered), func(t *testing.T) {
			f := newFixture(t)
			c := f.bootstrapped("orders-db", registered)
			const delay = 200 * time.Millisecond
			go func() {
				time.Sleep(delay)
				if !registered {
					if err := f.server.Register("orders-db", Keys{}); err != nil {
						t.Error(err)
					}
					time.Sleep(delay / 4)
				}
				if err := f.server.Rotate("orders-db", *key(1, 0x11)); err != nil {
					t.Error(err)
				}
			}()
			start := time.Now()
			if _, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Pending}); err != nil {
				t.Fatalf("enrollment held for the key: %v", err)
			}
			if waited := time.Since(start); waited < delay {
				t.Errorf("answered after %s, before the key was there", waited)
			}
			if c.KeyVersion() != 1 {
				t.Errorf("key version %d, want 1", c.KeyVersion())
			}
			if _, err := f.tokens.Token(context.Background(), "orders-db"); !isNotExist(err) {
				t.Errorf("the token after the enrollment: %v, want it used up", err)
			}
			if got := testutil.ToFloat64(f.server.enrollments.WithLabelValues("ok")); got != 1 {
				t.Errorf("ok enrollments = %v, want 1", got)
			}
			for _, refused := range []string{"no_key", "unknown_instance"} {
				if got := testutil.ToFloat64(f.server.enrollments.WithLabelValues(refused)); got != 0 {
					t.Errorf("%s enrollments = %v, want 0", refused, got)
				}
			}
		})
	}
}

// TestAHeldEnrollmentWhoseTokenWasReplaced checks that an enrollment held
// for the key does not go through with a token that a new bootstrap
// replaced meanwhile, and leaves the new token for its agent.
func TestAHeldEnrollmentWhoseTokenWasReplaced(t *testing.T) {
	f := newFixture(t)
	c := f.bootstrapped("orders-db", true)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Pending})
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)        // the enrollment is held: no key yet
	fresh, err := f.tokens.Issue("orders-db") // bootstrap again
	if err != nil {
		t.Fatal(err)
	}
	if err := f.server.Rotate("orders-db", *key(1, 0x11)); err != nil {
		t.Fatal(err)
	}
	var refused *RefusedError
	if err := <-errc; !errors.As(err, &refused) || refused.Reason != "no_token" {
		t.Fatalf("enrollment with the replaced token = %v, want no_token", err)
	}
	stored, err := f.tokens.Token(context.Background(), "orders-db")
	if err != nil || !bytes.Equal(stored.Bytes(), fresh.Bytes()) {
		t.Fatalf("the new token after the refusal: %v, want it kept", err)
	}
	if _, err := f.client("orders-db", f.host(fresh)).Poll(context.Background(), agent.Status{Instance: "orders-db", Phase: agent.Pending}); err != nil {
		t.Errorf("enrollment with the new token: %v", err)
	}
}
