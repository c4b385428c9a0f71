package rpc

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/vault"
)

// bootstrap runs the agent's request through JSON, as the transport will,
// and the reconciler's verification.
func bootstrap(t *testing.T, instance string, token vault.Secret) (*ecdh.PublicKey, *ecdh.PrivateKey) {
	t.Helper()
	req, priv, err := NewKeyRequest(instance, token)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var got KeyRequest
	if err := json.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	pub, err := got.Verify(instance, token)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestKeyDeliveryRoundTrip(t *testing.T) {
	token, err := NewBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := bootstrap(t, "orders-db", token)
	key := testKey(0x5a)
	sealed, err := SealKeyFor(pub, "orders-db", token, 3, key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, key) {
		t.Fatal("the key crosses the wire in clear")
	}
	version, got, err := OpenKey(priv, "orders-db", token, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uint32(3), version); diff != "" {
		t.Errorf("version (-want +got):\n%s", diff)
	}
	if !bytes.Equal(key, got) {
		t.Errorf("delivered key differs from the sealed one")
	}
	// The delivered key works: the agent's keyring opens the reconciler's messages.
	clk := newClock()
	recKeys, agentKeys := NewKeyring("orders-db"), NewKeyring("orders-db")
	if err := recKeys.Add(3, key); err != nil {
		t.Fatal(err)
	}
	if err := agentKeys.Add(version, got); err != nil {
		t.Fatal(err)
	}
	rec := session(t, SideReconciler, recKeys, WithClock(clk.now))
	agent := session(t, SideAgent, agentKeys, WithClock(clk.now))
	if _, _, err := agent.Open(seal(t, rec, []byte("hello"))); err != nil {
		t.Fatal(err)
	}
}

func TestKeyRequestRefused(t *testing.T) {
	token, _ := NewBootstrapToken()
	other, _ := NewBootstrapToken()
	attacker, _ := ecdh.X25519().GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name     string
		instance string
		token    vault.Secret
		mutate   func(*KeyRequest)
		want     error
	}{
		{"another instance's request", "billing-db", token, func(*KeyRequest) {}, ErrWrongInstance},
		{"proof made with another token", "orders-db", other, func(*KeyRequest) {}, ErrTampered},
		{"public key swapped by an attacker", "orders-db", token, func(r *KeyRequest) { r.PublicKey = attacker.PublicKey().Bytes() }, ErrTampered},
		{"proof truncated", "orders-db", token, func(r *KeyRequest) { r.Proof = r.Proof[:16] }, ErrTampered},
		{"public key garbage", "orders-db", token, func(r *KeyRequest) { r.PublicKey = []byte("short") }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _, err := NewKeyRequest("orders-db", token)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(req)
			if _, err := req.Verify(tc.instance, tc.token); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKeyDeliveryRefused(t *testing.T) {
	token, _ := NewBootstrapToken()
	other, _ := NewBootstrapToken()
	pub, priv := bootstrap(t, "orders-db", token)
	stranger, _ := ecdh.X25519().GenerateKey(rand.Reader)
	sealed, err := SealKeyFor(pub, "orders-db", token, 1, testKey(0x5a))
	if err != nil {
		t.Fatal(err)
	}
	// An attacker who saw the request (the agent's public key) but has no
	// token plants a key of their own.
	planted, err := SealKeyFor(pub, "orders-db", other, 1, testKey(0x66))
	if err != nil {
		t.Fatal(err)
	}
	forOther, _ := SealKeyFor(pub, "billing-db", token, 1, testKey(0x5a))
	for _, tc := range []struct {
		name     string
		priv     *ecdh.PrivateKey
		instance string
		token    vault.Secret
		data     []byte
		want     error
	}{
		{"another key pair", stranger, "orders-db", token, sealed, ErrTampered},
		{"another bootstrap token", priv, "orders-db", other, sealed, ErrTampered},
		{"planted by an attacker without the token", priv, "orders-db", token, planted, ErrTampered},
		{"delivery for another instance", priv, "orders-db", token, forOther, ErrWrongInstance},
		{"truncated", priv, "orders-db", token, sealed[:len(sealed)-1], ErrMalformed},
		{"empty", priv, "orders-db", token, nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, key, err := OpenKey(tc.priv, tc.instance, tc.token, tc.data)
			if !errors.Is(err, tc.want) || key != nil {
				t.Errorf("got %v (key returned: %v), want %v", err, key != nil, tc.want)
			}
		})
	}
	for pos := range sealed {
		for bit := range 8 {
			m := bytes.Clone(sealed)
			m[pos] ^= 1 << bit
			if _, key, err := OpenKey(priv, "orders-db", token, m); err == nil || key != nil {
				t.Fatalf("byte %d bit %d flipped: delivery opened", pos, bit)
			}
		}
	}
}

func TestSealKeyForRefusesBadInput(t *testing.T) {
	token, _ := NewBootstrapToken()
	pub, _ := bootstrap(t, "orders-db", token)
	p256, _ := ecdh.P256().GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name     string
		pub      *ecdh.PublicKey
		instance string
		token    vault.Secret
		version  uint32
		key      vault.Secret
	}{
		{"version zero", pub, "orders-db", token, 0, testKey(1)},
		{"short key", pub, "orders-db", token, 1, testKey(1)[:16]},
		{"short token", pub, "orders-db", token[:8], 1, testKey(1)},
		{"bad instance", pub, "Orders DB", token, 1, testKey(1)},
		{"not X25519", p256.PublicKey(), "orders-db", token, 1, testKey(1)},
		{"nil public key", nil, "orders-db", token, 1, testKey(1)},
	} {
		if _, err := SealKeyFor(tc.pub, tc.instance, tc.token, tc.version, tc.key); err == nil {
			t.Errorf("%s: sealed anyway", tc.name)
		}
	}
}
