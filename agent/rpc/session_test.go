package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		from    func(rec, agent *Session) (*Session, *Session)
		dir     Direction
		payload []byte
	}{
		{"reconciler to agent", func(r, a *Session) (*Session, *Session) { return r, a }, ToAgent, []byte(`{"generation":7}`)},
		{"agent to reconciler", func(r, a *Session) (*Session, *Session) { return a, r }, ToReconciler, []byte(`{"phase":"Active"}`)},
		{"empty payload", func(r, a *Session) (*Session, *Session) { return r, a }, ToAgent, []byte{}},
		{"largest payload", func(r, a *Session) (*Session, *Session) { return a, r }, ToReconciler, bytes.Repeat([]byte{'x'}, MaxPayload)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			from, to := tc.from(pair(t, "orders-db", clk))
			for i := range 3 {
				msg := seal(t, from, tc.payload)
				h, got, err := to.Open(msg)
				if err != nil {
					t.Fatalf("open message %d: %v", i, err)
				}
				want := Header{Instance: "orders-db", Direction: tc.dir, KeyVersion: 1, Counter: uint64(t0.Unix())<<32 + uint64(i) + 1, Time: t0}
				if diff := cmp.Diff(want, h); diff != "" {
					t.Errorf("header (-want +got):\n%s", diff)
				}
				if !bytes.Equal(tc.payload, got) {
					t.Errorf("payload of %d bytes came back as %d bytes", len(tc.payload), len(got))
				}
			}
		})
	}
}

func TestPayloadDoesNotAliasMessage(t *testing.T) {
	clk := newClock()
	for _, plaintext := range []bool{false, true} {
		var rec, agent *Session
		if plaintext {
			rec = session(t, SideReconciler, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
			agent = session(t, SideAgent, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
		} else {
			rec, agent = pair(t, "orders-db", clk)
		}
		msg := seal(t, rec, []byte("payload"))
		_, got, err := agent.Open(msg)
		if err != nil {
			t.Fatal(err)
		}
		clear(msg)
		if diff := cmp.Diff("payload", string(got)); diff != "" {
			t.Errorf("plaintext=%v: payload changed with the message (-want +got):\n%s", plaintext, diff)
		}
	}
}

// refusal is a hostile case: build returns the receiver and the messages
// to open in order; the last must be refused with want.
type refusal struct {
	name  string
	build func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte)
	want  error
}

func refusals() []refusal {
	return []refusal{
		{"replayed message", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			m := seal(t, rec, []byte("apply"))
			return agent, [][]byte{m, m}
		}, ErrReplay},
		{"message below the window", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			old := seal(t, rec, []byte("old"))
			for range WindowSize - 1 {
				seal(t, rec, nil)
			}
			return agent, [][]byte{seal(t, rec, []byte("new")), old}
		}, ErrReplay},
		{"message reflected back to its sender", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, _ := pair(t, "orders-db", clk, opts...)
			return rec, [][]byte{seal(t, rec, []byte("apply"))}
		}, ErrWrongDirection},
		{"header names another instance", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, _ := pair(t, "orders-db", clk, opts...)
			other := session(t, SideAgent, keyring(t, "billing-db", 0x10, 1), append(opts, WithClock(clk.now))...)
			return other, [][]byte{seal(t, rec, []byte("apply"))}
		}, ErrWrongInstance},
		{"sealed under another instance's key", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			// The holder of orders-db's key claims to be billing-db.
			forger := session(t, SideReconciler, keyring(t, "billing-db", 0x10, 1), WithClock(clk.now))
			victim := session(t, SideAgent, keyring(t, "billing-db", 0x40, 1), append(opts, WithClock(clk.now))...)
			return victim, [][]byte{seal(t, forger, []byte("apply"))}
		}, ErrTampered},
		{"header rewritten to another instance", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, _ := pair(t, "orders-db", clk, opts...)
			m := seal(t, rec, []byte("apply"))
			m = bytes.Replace(m, []byte("orders-db"), []byte("orders-dx"), 1)
			victim := session(t, SideAgent, keyring(t, "orders-dx", 0x10, 1), append(opts, WithClock(clk.now))...)
			return victim, [][]byte{m}
		}, ErrTampered},
		{"unknown key version", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec := session(t, SideReconciler, keyring(t, "orders-db", 0x10, 2), WithClock(clk.now))
			agent := session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), append(opts, WithClock(clk.now))...)
			return agent, [][]byte{seal(t, rec, []byte("apply"))}
		}, ErrUnknownKeyVersion},
		{"sealed message to a keyless receiver", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, _ := pair(t, "orders-db", clk)
			agent := session(t, SideAgent, NewKeyring("orders-db"), append(opts, WithClock(clk.now), WithPlaintextAllowed(true))...)
			return agent, [][]byte{seal(t, rec, []byte("apply"))}
		}, ErrUnknownKeyVersion},
		{"sender clock far ahead", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			clk.set(t0.Add(DefaultSkew + time.Second))
			m := seal(t, rec, []byte("apply"))
			clk.set(t0)
			return agent, [][]byte{m}
		}, ErrStale},
		{"sender clock far behind", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			clk.set(t0.Add(-DefaultSkew - time.Second))
			m := seal(t, rec, []byte("apply"))
			clk.set(t0)
			return agent, [][]byte{m}
		}, ErrStale},
		{"plaintext to a keyed receiver that allows plaintext", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			keyless := session(t, SideReconciler, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
			agent := session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), append(opts, WithClock(clk.now), WithPlaintextAllowed(true))...)
			return agent, [][]byte{seal(t, keyless, []byte("apply"))}
		}, ErrPlaintextRefused},
		{"plaintext to a keyless receiver whose policy forbids it", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			keyless := session(t, SideAgent, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
			rec := session(t, SideReconciler, NewKeyring("orders-db"), append(opts, WithClock(clk.now))...)
			return rec, [][]byte{seal(t, keyless, []byte("status"))}
		}, ErrPlaintextRefused},
		{"seal stripped into plaintext", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			m := seal(t, rec, []byte("apply"))
			// Rewrite the header as plaintext: magic P, key version 0, no nonce.
			h, _ := parse(m)
			stripped := appendHeader(nil, false, Header{Instance: "orders-db", Direction: ToAgent, Counter: h.header.Counter + 1, Time: t0})
			return agent, [][]byte{append(stripped, "evil"...)}
		}, ErrPlaintextRefused},
		{"truncated header", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			return agent, [][]byte{seal(t, rec, []byte("apply"))[:fixedHeaderSize-1]}
		}, ErrMalformed},
		{"garbage", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			_, agent := pair(t, "orders-db", clk, opts...)
			return agent, [][]byte{bytes.Repeat([]byte("garbage!"), 20)}
		}, ErrMalformed},
		{"empty body", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			_, agent := pair(t, "orders-db", clk, opts...)
			return agent, [][]byte{nil}
		}, ErrMalformed},
		{"oversized", func(t *testing.T, clk *clock, opts ...Option) (*Session, [][]byte) {
			rec, agent := pair(t, "orders-db", clk, opts...)
			m := seal(t, rec, []byte("apply"))
			return agent, [][]byte{append(m, make([]byte, MaxMessage)...)}
		}, ErrMalformed},
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range refusals() {
		t.Run(tc.name, func(t *testing.T) {
			metrics := NewMetrics(nil)
			to, msgs := tc.build(t, newClock(), WithMetrics(metrics))
			for _, m := range msgs[:len(msgs)-1] {
				if _, _, err := to.Open(m); err != nil {
					t.Fatalf("open an earlier message: %v", err)
				}
			}
			h, payload, err := to.Open(msgs[len(msgs)-1])
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: got error %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(Header{}, h); diff != "" {
				t.Errorf("a refused message returned a header (-want +got):\n%s", diff)
			}
			if payload != nil {
				t.Errorf("a refused message returned a payload")
			}
			if want := fmt.Sprintf("open message for instance %q: ", to.Instance()); len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if got := testutil.ToFloat64(metrics.messages.WithLabelValues(to.in.String(), Reason(err))); got != 1 {
				t.Errorf("%s counted %v times, want 1", Reason(err), got)
			}
		})
	}
}

func TestClockWithinSkewAccepted(t *testing.T) {
	for _, off := range []time.Duration{-DefaultSkew, -time.Minute, time.Minute, DefaultSkew} {
		clk := newClock()
		rec, agent := pair(t, "orders-db", clk)
		clk.set(t0.Add(off))
		m := seal(t, rec, []byte("apply"))
		clk.set(t0)
		if _, _, err := agent.Open(m); err != nil {
			t.Errorf("sender %s off: %v", off, err)
		}
	}
	clk := newClock()
	rec, agent := pair(t, "orders-db", clk, WithSkew(time.Second))
	clk.set(t0.Add(2 * time.Second))
	m := seal(t, rec, nil)
	clk.set(t0)
	if _, _, err := agent.Open(m); !errors.Is(err, ErrStale) {
		t.Errorf("WithSkew(1s), sender 2s ahead: got %v, want ErrStale", err)
	}
}

func TestReorderWithinWindow(t *testing.T) {
	clk := newClock()
	rec, agent := pair(t, "orders-db", clk)
	msgs := make([][]byte, WindowSize+8)
	for i := range msgs {
		msgs[i] = seal(t, rec, []byte{byte(i)})
	}
	for _, step := range []struct {
		name string
		i    int
		want error
	}{
		{"first", 0, nil},
		{"overtaking message", 2, nil},
		{"overtaken message accepted late", 1, nil},
		{"overtaken message only once", 1, ErrReplay},
		{"jump ahead", WindowSize + 2, nil},
		{"oldest message still in the window", 3, nil},
		{"message just below the window", 2, ErrReplay},
		{"never-seen message below the window", 4 - 2, ErrReplay},
		{"in the window, not yet seen", WindowSize, nil},
		{"newest again", WindowSize + 2, ErrReplay},
		{"after the newest", WindowSize + 7, nil},
		{"fallen out of the window since", 4, ErrReplay},
	} {
		_, got, err := agent.Open(msgs[step.i])
		if !errors.Is(err, step.want) || (step.want == nil && err != nil) {
			t.Fatalf("%s (message %d): got %v, want %v", step.name, step.i, err, step.want)
		}
		if err == nil && got[0] != byte(step.i) {
			t.Fatalf("%s: got message %d, want %d", step.name, got[0], step.i)
		}
	}
}

func TestEveryBitFlipRefused(t *testing.T) {
	clk := newClock()
	rec, _ := pair(t, "db", clk)
	msg := seal(t, rec, []byte("hi"))
	nameEnd := fixedHeaderSize + len("db")
	// Where a flip lands decides which check sees it first; every one of
	// them refuses the message.
	allowed := func(pos int) []error {
		switch {
		case pos < 4: // magic, format version
			return []error{ErrMalformed}
		case pos == 4: // direction
			return []error{ErrMalformed, ErrWrongDirection}
		case pos < 9: // key version
			return []error{ErrUnknownKeyVersion, ErrMalformed}
		case pos < 25: // counter, timestamp
			return []error{ErrTampered}
		case pos < nameEnd: // name length, name
			return []error{ErrMalformed, ErrWrongInstance}
		default: // nonce, ciphertext, tag
			return []error{ErrTampered}
		}
	}
	for pos := range msg {
		for bit := range 8 {
			_, agent := pair(t, "db", clk)
			m := bytes.Clone(msg)
			m[pos] ^= 1 << bit
			_, payload, err := agent.Open(m)
			ok := false
			for _, want := range allowed(pos) {
				ok = ok || errors.Is(err, want)
			}
			if !ok || payload != nil {
				t.Errorf("byte %d bit %d flipped: got %v, want one of %v", pos, bit, err, allowed(pos))
			}
		}
	}
	// The untouched message still opens: the flips were the only cause.
	_, agent := pair(t, "db", clk)
	if _, _, err := agent.Open(msg); err != nil {
		t.Fatal(err)
	}
}

func TestEveryTruncationRefused(t *testing.T) {
	clk := newClock()
	rec, _ := pair(t, "orders-db", clk)
	plainSender := session(t, SideReconciler, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
	for _, tc := range []struct {
		name string
		msg  []byte
		to   func() *Session
	}{
		{"sealed", seal(t, rec, []byte("apply generation 7")), func() *Session { _, a := pair(t, "orders-db", clk); return a }},
		{"plaintext", seal(t, plainSender, []byte("apply generation 7")), func() *Session {
			return session(t, SideAgent, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true))
		}},
	} {
		// A plaintext message has no integrity: cutting its payload is
		// undetectable, which is why it is for keyless agents only.
		end := len(tc.msg)
		if tc.name == "plaintext" {
			end = fixedHeaderSize + len("orders-db")
		}
		for n := range end {
			_, payload, err := tc.to().Open(tc.msg[:n])
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTampered) {
				t.Errorf("%s cut to %d of %d bytes: got %v, want ErrMalformed or ErrTampered", tc.name, n, len(tc.msg), err)
			}
			if payload != nil {
				t.Errorf("%s cut to %d bytes returned a payload", tc.name, n)
			}
		}
	}
}

func TestPlaintextPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		allowed  bool
		keyed    bool
		wantSeal error
		wantOpen error
	}{
		{"keyless, allowed: plaintext both ways", true, false, nil, nil},
		{"keyless, not allowed: nothing", false, false, ErrNoKey, ErrPlaintextRefused},
		{"keyed, allowed: plaintext refused", true, true, nil, ErrPlaintextRefused},
		{"keyed, not allowed: plaintext refused", false, true, nil, ErrPlaintextRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			keys := NewKeyring("orders-db")
			if tc.keyed {
				keys = keyring(t, "orders-db", 0x10, 1)
			}
			agent := session(t, SideAgent, keys, WithClock(clk.now), WithPlaintextAllowed(tc.allowed))
			m, err := agent.Seal([]byte("status"))
			if !errors.Is(err, tc.wantSeal) {
				t.Fatalf("Seal: got %v, want %v", err, tc.wantSeal)
			}
			if err == nil && tc.keyed == (m[2] == 'P') {
				t.Errorf("keyed=%v sealed with magic %q", tc.keyed, m[:3])
			}
			rec := session(t, SideReconciler, keys, WithClock(clk.now), WithPlaintextAllowed(tc.allowed))
			h, payload, err := rec.Open(seal(t, session(t, SideAgent, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true)), []byte("status")))
			if !errors.Is(err, tc.wantOpen) || (tc.wantOpen == nil && err != nil) {
				t.Fatalf("Open plaintext: got %v, want %v", err, tc.wantOpen)
			}
			if err == nil {
				if h.Sealed() || string(payload) != "status" {
					t.Errorf("got header %+v payload %q, want an unsealed \"status\"", h, payload)
				}
			}
		})
	}
}

func TestRotation(t *testing.T) {
	clk := newClock()
	metrics := NewMetrics(nil)
	rec := session(t, SideReconciler, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now), WithMetrics(metrics))
	agent := session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now), WithMetrics(metrics))
	k2 := testKey(0x77)
	var underV1FromAgent, underV1FromRec []byte
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	open := func(to *Session, m []byte, wantVersion uint32, wantErr error) {
		t.Helper()
		h, _, err := to.Open(m)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("got %v, want %v", err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.KeyVersion != wantVersion {
			t.Fatalf("sealed under version %d, want %d", h.KeyVersion, wantVersion)
		}
	}
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"reconciler adds v2 and still seals v1", func() {
			must(rec.Keys().Add(2, k2))
			open(agent, seal(t, rec, []byte("your new key, v2")), 1, nil)
		}},
		{"agent adds and promotes v2, acknowledges under v2", func() {
			underV1FromAgent = seal(t, agent, []byte("sealed before the rotation"))
			must(agent.Keys().Add(2, k2))
			must(agent.Keys().Promote(2))
			open(rec, seal(t, agent, []byte("ack v2")), 2, nil)
		}},
		{"old key still accepted before retirement", func() {
			underV1FromRec = seal(t, rec, []byte("still v1"))
			open(agent, underV1FromRec, 1, nil)
			open(rec, underV1FromAgent, 1, nil)
		}},
		{"reconciler promotes v2 and retires v1", func() {
			underV1FromAgent = seal(t, session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now)), []byte("late v1"))
			must(rec.Keys().Promote(2))
			must(rec.Keys().Retire(1))
			open(agent, seal(t, rec, []byte("v2 now")), 2, nil)
		}},
		{"message under the retired version refused", func() {
			open(rec, underV1FromAgent, 0, ErrUnknownKeyVersion)
		}},
		{"agent retires v1 after a message under v2", func() {
			captured := seal(t, session(t, SideReconciler, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now)), []byte("v1"))
			must(agent.Keys().Retire(1))
			open(agent, captured, 0, ErrUnknownKeyVersion)
			open(agent, seal(t, rec, []byte("v2")), 2, nil)
		}},
		{"retired version cannot come back", func() {
			if err := rec.Keys().Add(1, testKey(0x11)); !errors.Is(err, ErrBadKey) {
				t.Fatalf("re-adding v1: got %v, want ErrBadKey", err)
			}
		}},
		{"current version cannot be retired", func() {
			if err := rec.Keys().Retire(2); !errors.Is(err, ErrRetireCurrent) {
				t.Fatalf("retiring the current version: got %v, want ErrRetireCurrent", err)
			}
		}},
		{"third version refused while two are held", func() {
			must(rec.Keys().Add(3, testKey(0x33)))
			if err := rec.Keys().Add(4, testKey(0x44)); !errors.Is(err, ErrKeyringFull) {
				t.Fatalf("adding a third version: got %v, want ErrKeyringFull", err)
			}
		}},
	} {
		t.Log(step.name)
		step.do()
	}
	if got := testutil.ToFloat64(metrics.messages.WithLabelValues("to_reconciler", ResultUnknownKey)); got != 1 {
		t.Errorf("unknown_key_version to_reconciler counted %v times, want 1", got)
	}
}

func TestKeyringAdd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint32
		key     []byte
		want    error
	}{
		{"short key", 1, make([]byte, 16), ErrBadKey},
		{"long key", 1, make([]byte, 64), ErrBadKey},
		{"all-zero key", 1, make([]byte, KeySize), ErrBadKey},
		{"version zero", 0, testKey(1), ErrBadKey},
		{"version already held", 5, testKey(2), ErrBadKey},
		{"fresh version", 6, testKey(3), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keyring(t, "orders-db", 0, 5)
			err := k.Add(tc.version, tc.key)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(uint32(5), k.Current()); diff != "" {
				t.Errorf("current version changed by Add (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSealErrors(t *testing.T) {
	clk := newClock()
	rec, _ := pair(t, "orders-db", clk)
	if _, err := rec.Seal(make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized payload: got %v, want ErrTooLarge", err)
	}
	exhausted := keyring(t, "orders-db", 0x10, 1)
	exhausted.keys[1].seals.Store(MaxSealsPerKey - 1)
	worn := session(t, SideReconciler, exhausted)
	if _, err := worn.Seal(nil); err != nil {
		t.Errorf("last seal allowed under a key: %v", err)
	}
	if _, err := worn.Seal(nil); !errors.Is(err, ErrKeyExhausted) {
		t.Errorf("seal beyond MaxSealsPerKey: got %v, want ErrKeyExhausted", err)
	}
	failing := session(t, SideReconciler, keyring(t, "orders-db", 0x10, 1), WithRandom(bytes.NewReader(nil)))
	if _, err := failing.Seal([]byte("x")); err == nil {
		t.Errorf("a failing nonce source sealed anyway")
	}
	for _, tc := range []struct {
		name string
		side Side
		keys *Keyring
	}{
		{"nil keyring", SideAgent, nil},
		{"bad instance name", SideAgent, NewKeyring("Orders_DB")},
		{"unknown side", 0, NewKeyring("orders-db")},
	} {
		if _, err := NewSession(tc.side, tc.keys); err == nil {
			t.Errorf("NewSession with %s: no error", tc.name)
		}
	}
}

func TestWatermarks(t *testing.T) {
	clk := newClock()
	rec, agent := pair(t, "orders-db", clk)
	first := seal(t, rec, []byte("1"))
	second := seal(t, rec, []byte("2"))
	if _, _, err := agent.Open(second); err != nil {
		t.Fatal(err)
	}
	sent, _ := rec.Watermarks()
	_, received := agent.Watermarks()

	// Both sides restart with their watermarks; the clock went back.
	clk.set(t0.Add(-time.Hour))
	rec2 := session(t, SideReconciler, rec.Keys(), WithClock(clk.now), WithWatermarks(sent, 0))
	clk.set(t0)
	agent2 := session(t, SideAgent, agent.Keys(), WithClock(clk.now), WithWatermarks(0, received))
	for _, m := range [][]byte{first, second} {
		if _, _, err := agent2.Open(m); !errors.Is(err, ErrReplay) {
			t.Errorf("restarted agent opened an old message: %v", err)
		}
	}
	if _, _, err := agent2.Open(seal(t, rec2, []byte("3"))); err != nil {
		t.Errorf("restarted reconciler reused a counter: %v", err)
	}
}

func TestMetricsCountedPerResult(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	metrics := NewMetrics(reg)
	if again := NewMetrics(reg); again.messages != metrics.messages {
		t.Errorf("a second NewMetrics on the same registerer did not reuse the counter")
	}
	want := map[string]float64{}
	for _, tc := range refusals() {
		to, msgs := tc.build(t, newClock(), WithMetrics(metrics))
		for _, m := range msgs {
			_, _, err := to.Open(m)
			want[to.in.String()+"/"+Reason(err)]++
		}
	}
	got := map[string]float64{}
	for _, d := range []Direction{ToAgent, ToReconciler} {
		for _, r := range append([]string{ResultOK}, ResultReplay, ResultStale, ResultTampered, ResultWrongInstance,
			ResultWrongDirection, ResultUnknownKey, ResultPlaintextRefused, ResultMalformed) {
			if v := testutil.ToFloat64(metrics.messages.WithLabelValues(d.String(), r)); v != 0 {
				got[d.String()+"/"+r] = v
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if n, err := testutil.GatherAndCount(reg, "reconciler_rpc_messages_total"); err != nil || n != 18 {
		t.Errorf("got %d series (%v), want 18, all present from the start", n, err)
	}
}

// TestConcurrentUse seals and opens from several goroutines while the
// keyring rotates, for the race detector. A goroutine descheduled between
// Seal and Open may fall more than WindowSize counters behind; such a
// message is refused as a replay, which is the window working. Nothing
// else may fail, and every counter is accepted at most once.
func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	rec, agent := pair(t, "orders-db", clk)
	if err := rec.Keys().Add(2, testKey(0x22)); err != nil {
		t.Fatal(err)
	}
	if err := agent.Keys().Add(2, testKey(0x22)); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted = map[uint64]int{}
		replays  int
	)
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if g == 0 && i == 50 {
					if err := rec.Keys().Promote(2); err != nil { // a rotation mid-traffic
						t.Error(err)
					}
				}
				m, err := rec.Seal([]byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				h, _, err := agent.Open(m)
				mu.Lock()
				switch {
				case err == nil:
					accepted[h.Counter]++
				case errors.Is(err, ErrReplay):
					replays++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for c, n := range accepted {
		if n != 1 {
			t.Errorf("counter %d accepted %d times", c, n)
		}
	}
	if len(accepted)+replays != 400 {
		t.Errorf("%d accepted + %d replays, want 400", len(accepted), replays)
	}
	sent, _ := rec.Watermarks()
	if _, received := agent.Watermarks(); sent != received {
		t.Errorf("sent up to %d, received up to %d", sent, received)
	}
}

func TestSendCounterExhausted(t *testing.T) {
	clk := newClock()
	rec := session(t, SideReconciler, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now), WithWatermarks(^uint64(0)-1, 0))
	if m := seal(t, rec, []byte("last")); binary.BigEndian.Uint64(m[9:17]) != ^uint64(0) {
		t.Errorf("last counter %d, want %d", binary.BigEndian.Uint64(m[9:17]), ^uint64(0))
	}
	for range 2 {
		if _, err := rec.Seal([]byte("one too many")); err == nil {
			t.Fatal("sealed past the last counter")
		}
	}
	if sent, _ := rec.Watermarks(); sent != ^uint64(0) {
		t.Errorf("sent watermark %d after exhaustion, want %d", sent, ^uint64(0))
	}
}

// TestSealOpenAllocs pins the allocations of a sealed exchange: the
// message Seal returns and the payload Open returns, nothing else, with
// the receiver counting in Metrics.
func TestSealOpenAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	rec := session(t, SideReconciler, keyring(t, "orders-db", 0x10, 1))
	agent := session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), WithMetrics(NewMetrics(nil)))
	payload := make([]byte, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		m, err := rec.Seal(payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := agent.Open(m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations per Seal and Open, want 2", allocs)
	}
}

// TestForgedPlaintextCounterCannotBlockSealedMessages: plaintext is not
// authenticated, so an attacker can send one with a counter near 2^64
// while the instance has no key. Once it gets a key, the agent's sealed
// messages must still be accepted.
func TestForgedPlaintextCounterCannotBlockSealedMessages(t *testing.T) {
	clk := newClock()
	recKeys := NewKeyring("orders-db")
	rec := session(t, SideReconciler, recKeys, WithClock(clk.now), WithPlaintextAllowed(true))
	forger := session(t, SideAgent, NewKeyring("orders-db"), WithClock(clk.now), WithPlaintextAllowed(true),
		WithWatermarks(^uint64(0)-2, 0))
	if _, _, err := rec.Open(seal(t, forger, []byte("forged"))); err != nil {
		t.Fatalf("plaintext while allowed: %v", err)
	}
	if err := recKeys.Add(1, testKey(0x11)); err != nil {
		t.Fatal(err)
	}
	agentSide := session(t, SideAgent, keyring(t, "orders-db", 0x10, 1), WithClock(clk.now))
	if _, _, err := rec.Open(seal(t, agentSide, []byte("honest"))); err != nil {
		t.Errorf("sealed message after a forged plaintext counter: %v, want accepted", err)
	}
	if _, received := rec.Watermarks(); received == ^uint64(0)-1 {
		t.Error("the forged plaintext counter became the persisted watermark")
	}
}
