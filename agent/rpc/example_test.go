package rpc_test

import (
	"fmt"

	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/vault"
)

// A reconciler and an agent share instance orders-db's key, version 1.
// Each side keeps one Session for the instance; the sealed bytes are an
// HTTP body.
func Example() {
	key := vault.Secret("an example key, 32 bytes long!!!") // from vault.KeyWrapper.NewKey in real use
	recKeys, agentKeys := rpc.NewKeyring("orders-db"), rpc.NewKeyring("orders-db")
	if err := recKeys.Add(1, key); err != nil {
		panic(err)
	}
	if err := agentKeys.Add(1, key); err != nil {
		panic(err)
	}
	rec, _ := rpc.NewSession(rpc.SideReconciler, recKeys)
	agent, _ := rpc.NewSession(rpc.SideAgent, agentKeys)

	body, _ := rec.Seal([]byte(`{"generation":7}`))
	h, payload, err := agent.Open(body)
	fmt.Println(h.Instance, h.Direction, h.KeyVersion, string(payload), err)

	_, _, err = agent.Open(body) // the same bytes again
	fmt.Println(rpc.Reason(err))
	// Output:
	// orders-db to_agent 1 {"generation":7} <nil>
	// replay
}

// A keyless agent gets its key sealed to a public key it made, proving
// that it holds the one-time bootstrap token without sending it.
func ExampleSealKeyFor() {
	token, _ := rpc.NewBootstrapToken() // printed by `reconciler agent bootstrap orders-db`

	// Agent: a fresh key pair and a request, sent to the reconciler.
	req, priv, _ := rpc.NewKeyRequest("orders-db", token)

	// Reconciler: check the proof, seal the instance key to the agent.
	pub, err := req.Verify("orders-db", token)
	if err != nil {
		panic(err)
	}
	key := vault.Secret("an example key, 32 bytes long!!!")
	delivery, _ := rpc.SealKeyFor(pub, "orders-db", token, 1, key)

	// Agent: open it and start sealing.
	version, got, err := rpc.OpenKey(priv, "orders-db", token, delivery)
	fmt.Println(version, got, err)
	// Output: 1 [redacted] <nil>
}
