package rpc

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for sessions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testKey returns a distinct valid key per fill byte.
func testKey(fill byte) vault.Secret { return vault.Secret(bytes.Repeat([]byte{fill}, KeySize)) }

// keyring returns a keyring for instance holding the given versions, each
// keyed by testKey(fill), the first current.
func keyring(t testing.TB, instance string, fill byte, versions ...uint32) *Keyring {
	t.Helper()
	k := NewKeyring(instance)
	for _, v := range versions {
		if err := k.Add(v, testKey(fill+byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// session returns a session or fails the test.
func session(t testing.TB, side Side, keys *Keyring, opts ...Option) *Session {
	t.Helper()
	s, err := NewSession(side, keys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pair returns a reconciler and an agent session for instance sharing key
// version 1, on clk.
func pair(t testing.TB, instance string, clk *clock, opts ...Option) (rec, agent *Session) {
	t.Helper()
	opts = append([]Option{WithClock(clk.now)}, opts...)
	return session(t, SideReconciler, keyring(t, instance, 0x10, 1), opts...),
		session(t, SideAgent, keyring(t, instance, 0x10, 1), opts...)
}

// seal seals payload or fails the test.
func seal(t testing.TB, s *Session, payload []byte) []byte {
	t.Helper()
	m, err := s.Seal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
