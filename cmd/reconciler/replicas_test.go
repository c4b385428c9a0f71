package main

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// TestReplicasFailOver runs three replicas on one PostgreSQL and one Vault,
// with the agents spread over all three, turns SSL on for the fleet, and
// SIGKILLs the leader mid-rollout: the others finish it, and no instance
// gets a certificate for nothing.
func TestReplicasFailOver(t *testing.T) {
	const instances = 12
	dsn := freshDatabase(t)
	r := newRollout(t, instances, vaultservertest.Dev(t))
	procs := make([]*process, 3)
	for i := range procs {
		id, api, agents := fmt.Sprintf("replica-%d", i), freeAddr(t), freeAddr(t)
		procs[i] = r.startProcess(id, api, agents, r.config(api, agents, fmt.Sprintf("  postgres: {dsn: %q}", dsn),
			fmt.Sprintf("replicas:\n  id: %s\n  advertise: {api: \"https://%s\", agents: \"https://%s\"}\n", id, api, agents)))
	}
	var leader *process
	waitFor(t, "one leader", func() bool {
		n := 0
		for _, p := range procs {
			if r.leading(p) {
				leader, n = p, n+1
			}
		}
		return n == 1
	})
	var survivors []*process
	for _, p := range procs {
		if p != leader {
			survivors = append(survivors, p)
		}
	}

	// The agents, spread over the three replicas' endpoints, the other two
	// as fallbacks.
	r.startAgents(func(i int) []string {
		return []string{procs[i%3].agents, procs[(i+1)%3].agents, procs[(i+2)%3].agents}
	})
	waitFor(t, "every agent to report to the leader, through any replica", func() bool {
		return r.count(survivors[0], reporting) == instances
	})

	// SSL on for the fleet; the leader dies with the rollout under way.
	r.writeFleet("enabled")
	waitFor(t, "the rollout to start", func() bool { return r.count(survivors[0], verified) >= 1 })
	leader.kill()
	waitFor(t, "a new leader", func() bool { return r.leading(survivors[0]) || r.leading(survivors[1]) })
	waitFor(t, "the rollout to finish after the kill", func() bool { return r.count(survivors[1], verified) == instances })

	// A rollout needs one certificate per instance; the kill may cost a
	// second to those whose certificate was on its way, at most the dead
	// leader's concurrency (2).
	r.checkIssuance(2)

	// One generation per change published: the first (SSL off), SSL on,
	// and at most one more for a certificate lost with the leader.
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var maxGen int64
	if err := conn.QueryRow(t.Context(), "SELECT max(generation) FROM instances").Scan(&maxGen); err != nil {
		t.Fatal(err)
	}
	if maxGen > 3 {
		t.Errorf("an instance reached generation %d; a rollout with one takeover needs at most 3", maxGen)
	}
}
