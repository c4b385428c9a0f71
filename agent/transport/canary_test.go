package transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/vault"
)

// TestNoSecretReachesLogsErrorsMetricsOrStatus plants canaries as the RPC
// key, the certificate's private key and the enrollment token, drives
// enrollment, delivery, rotation and every refusal, and greps everything
// an operator or an attacker with a log reader could see.
func TestNoSecretReachesLogsErrorsMetricsOrStatus(t *testing.T) {
	rpcKey := vault.Secret("CANARY-RPC-KEY-0123456789abcdef") // 32 bytes with the NUL below
	rpcKey = append(rpcKey, '!')
	nextKey := vault.Secret("CANARY-NEXT-KEY-0123456789abcde!")
	privateKey := []byte("-----BEGIN PRIVATE KEY-----\nCANARY-PRIVATE-KEY\n-----END PRIVATE KEY-----\n")

	f := newFixture(t)
	clientReg := prometheus.NewRegistry()
	if err := f.server.Register("orders-db", Keys{Current: &Key{Version: 1, Secret: rpcKey}}); err != nil {
		t.Fatal(err)
	}
	token, _ := f.tokens.Issue("orders-db")
	h := f.host(token)
	c := f.client("orders-db", h, WithClientRegisterer(clientReg))

	var seen []string // every error and status text
	poll := func(s agent.Status) {
		d, err := c.Poll(context.Background(), s)
		if err != nil {
			seen = append(seen, err.Error())
		}
		if d != nil {
			seen = append(seen, d.Bundle.Key.String())
		}
	}
	poll(agent.Status{Instance: "orders-db"})
	f.server.Publish("orders-db", agent.Desired{Generation: 1, SSL: true, Bundle: testBundle("01", privateKey)})
	poll(agent.Status{Instance: "orders-db"})
	f.server.Rotate("orders-db", Key{Version: 2, Secret: nextKey})
	poll(agent.Status{Instance: "orders-db", Generation: 1})
	poll(agent.Status{Instance: "orders-db", Generation: 1})

	// Refusals of every kind, with their log lines at debug level.
	captured := f.box.lastRequest()
	for _, body := range [][]byte{captured, captured[:40], append(append([]byte{}, captured[:len(captured)-1]...), 0)} {
		code, reason := f.post(pollPath("orders-db"), body)
		seen = append(seen, reason, string(rune(code)))
	}
	wrong := f.host(token) // a used token
	thief := f.client("orders-db", wrong)
	if _, err := thief.Poll(context.Background(), agent.Status{Instance: "orders-db"}); err != nil {
		seen = append(seen, err.Error())
	}
	obs, _ := f.server.Observed("orders-db")
	status, _ := json.Marshal(obs)
	seen = append(seen, string(status))

	var metrics bytes.Buffer
	for _, reg := range []*prometheus.Registry{f.reg, clientReg} {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			expfmt.MetricFamilyToText(&metrics, mf)
		}
	}
	if !strings.Contains(metrics.String(), "reconciler_rpc_messages_total") {
		t.Fatal("the metrics dump holds no RPC counters: the scan would prove nothing")
	}
	if f.logs.Len() == 0 {
		t.Fatal("no log lines: the scan would prove nothing")
	}

	haystacks := map[string]string{"logs": f.logs.String(), "metrics": metrics.String(), "errors and status": strings.Join(seen, "\n")}
	for name, secret := range map[string][]byte{"rpc key": rpcKey, "next rpc key": nextKey, "private key": []byte("CANARY-PRIVATE-KEY"), "token": token.Bytes()} {
		forms := []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)[:20]}
		for where, text := range haystacks {
			for _, form := range forms {
				if strings.Contains(text, form) {
					t.Errorf("the %s appears in the %s", name, where)
				}
			}
		}
	}
}
