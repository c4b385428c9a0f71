package rpc

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/vault"
)

// TestCanaryNeverLeaks plants a distinctive key, token and payload, drives
// every refusal and every key-management error, logs the keyring and the
// session, and checks that no error, log line or metric holds them in any
// common encoding.
func TestCanaryNeverLeaks(t *testing.T) {
	canaryKey := vault.Secret("CANARY-rpc-key-0123456789abcdef!")
	canaryToken := vault.Secret("CANARY-bootstrap-token-987654321")
	canaryPayload := []byte("CANARY-PAYLOAD-do-not-print")
	if len(canaryKey) != KeySize || len(canaryToken) != TokenSize {
		t.Fatal("canary sizes")
	}

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	clk := newClock()
	opts := []Option{WithClock(clk.now), WithLogger(log), WithMetrics(metrics)}

	keys := func(instance string, version uint32) *Keyring {
		k := NewKeyring(instance)
		if err := k.Add(version, canaryKey); err != nil {
			t.Fatal(err)
		}
		return k
	}
	rec := session(t, SideReconciler, keys("orders-db", 1), opts...)
	agent := session(t, SideAgent, keys("orders-db", 1), opts...)
	var errs []error
	try := func(to *Session, m []byte) {
		if _, _, err := to.Open(m); err != nil {
			errs = append(errs, err)
		}
	}

	m := seal(t, rec, canaryPayload)
	try(agent, m)
	try(agent, m)            // replay
	try(rec, m)              // reflected
	try(agent, m[:len(m)-3]) // truncated
	flipped := bytes.Clone(m)
	flipped[len(flipped)-20] ^= 1
	try(agent, flipped) // tampered
	try(session(t, SideAgent, keys("billing-db", 1), opts...), m)
	try(session(t, SideAgent, keys("orders-db", 2), opts...), m)
	old := seal(t, rec, canaryPayload)
	clk.set(t0.Add(DefaultSkew * 3))
	try(agent, old) // stale: the receiver's clock moved on
	clk.set(t0)
	plain := session(t, SideReconciler, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
	try(agent, seal(t, plain, canaryPayload))
	try(agent, append([]byte("RCS\x09"), canaryPayload...))

	k := keys("orders-db", 1)
	for _, err := range []error{
		k.Add(1, canaryKey), k.Add(2, canaryKey[:31]), k.Add(2, canaryKey),
		k.Add(3, canaryKey), k.Retire(1), k.Promote(9),
	} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	req, priv, err := NewKeyRequest("orders-db", canaryToken)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := req.Verify("orders-db", canaryToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = req.Verify("orders-db", canaryKey)
	errs = append(errs, err)
	delivery, err := SealKeyFor(pub, "orders-db", canaryToken, 1, canaryKey)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = OpenKey(priv, "orders-db", canaryKey, delivery)
	errs = append(errs, err)
	_, _, err = OpenKey(priv, "billing-db", canaryToken, delivery)
	errs = append(errs, err)

	// Careless callers log what they hold.
	log.Debug("careless", "keyring", k, "session", agent, "secret", canaryKey, "request", req)
	var text strings.Builder
	fmt.Fprintf(&text, "%v %+v %#v %s %x %q\n", k, k, k, k, k, k)
	fmt.Fprintf(&text, "%v %+v %#v %s %x %q\n", agent, agent, agent, agent, agent, agent)
	for _, err := range errs {
		if err == nil {
			t.Fatal("an expected error is missing")
		}
		fmt.Fprintln(&text, err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		fmt.Fprintln(&text, f.String())
	}
	text.Write(logs.Bytes())
	if len(errs) < 17 || !strings.Contains(logs.String(), "rpc message refused") {
		t.Fatalf("the test did not exercise enough: %d errors, logs:\n%s", len(errs), logs.String())
	}

	if testing.Verbose() {
		t.Log(text.String())
	}
	for name, secret := range map[string][]byte{"key": canaryKey, "token": canaryToken, "payload": canaryPayload} {
		for _, enc := range []string{
			string(secret), "CANARY", hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
			base64.RawURLEncoding.EncodeToString(secret), fmt.Sprint([]byte(secret)),
		} {
			if strings.Contains(text.String(), enc) {
				t.Errorf("the canary %s leaked as %q in:\n%s", name, enc, text.String())
			}
		}
	}
}
