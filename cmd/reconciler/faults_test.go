package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// soak reports whether the full-size fault tests were asked for (make
// soak); make test runs them reduced.
func soak() bool { return os.Getenv("RECONCILER_SOAK") == "1" }

// awaitWithin is waitFor with a deadline of its own.
func awaitWithin(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// TestRolloutSurvivesKillsAndAVaultOutage turns SSL on across a fleet and,
// while the rollout runs, SIGKILLs the reconciler at random moments and
// starts it again, and stops Vault for a while: the fleet converges, every
// agent still talks over its sealed channel (no key lost), every instance
// serves the certificate the reconciler issued and verified (none half
// configured), and the certificates issued stay within one per instance
// and what the kills can explain.
func TestRolloutSurvivesKillsAndAVaultOutage(t *testing.T) {
	instances, kills, vaultDown, deadline := 24, 5, 3*time.Second, 3*time.Minute
	if soak() {
		instances, kills, vaultDown, deadline = 300, 20, time.Minute, 15*time.Minute
	}
	vs := vaultservertest.File(t)
	r := newRollout(t, instances, vs)
	api, agents := freeAddr(t), freeAddr(t)
	p := r.startProcess("reconciler", api, agents,
		r.config(api, agents, fmt.Sprintf("  sqlite: {path: %q}", filepath.Join(t.TempDir(), "state.db")), ""))
	r.startAgents(func(int) []string { return []string{agents} })
	awaitWithin(t, deadline, "every agent to report", func() bool { return r.count(p, reporting) == instances })

	r.writeFleet("enabled")
	awaitWithin(t, deadline, "the rollout to start", func() bool { return r.count(p, verified) >= 1 })
	for i := range kills {
		time.Sleep(time.Duration(rand.Int64N(int64(1500 * time.Millisecond))))
		p.kill()
		p.start()
		if i == kills/2 {
			t.Logf("Vault stopped for %s", vaultDown)
			vs.Restart(vaultDown)
		}
	}
	awaitWithin(t, deadline, "the rollout to converge", func() bool { return r.count(p, verified) == instances })
	// Each kill may cost a second certificate to the instances whose
	// certificate was on its way: at most the concurrency (2) per kill.
	r.checkIssuance(2 * kills)
}

// TestRolloutSurvivesTheDatabaseAndAgentsGoingAway runs one replica on a
// PostgreSQL store of its own, turns SSL on across the fleet, and while
// the rollout runs restarts the database (the replica loses its
// leadership with its session, and must campaign again and take up what
// was in flight) and SIGKILLs some agents at random moments, mid-apply
// among them, and starts them again. The fleet converges with every
// certificate verified.
func TestRolloutSurvivesTheDatabaseAndAgentsGoingAway(t *testing.T) {
	instances, children, kills, deadline := 12, 3, 4, 3*time.Minute
	if soak() {
		instances, children, kills, deadline = 100, 10, 20, 15*time.Minute
	}
	db := datastoretest.PostgreSQL(t, datastoretest.Options{})
	r := newRollout(t, instances, vaultservertest.Dev(t))
	r.children = children
	api, agents := freeAddr(t), freeAddr(t)
	dsn := fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=disable", db.Host, db.Port)
	p := r.startProcess("reconciler", api, agents, r.config(api, agents, fmt.Sprintf("  postgres: {dsn: %q}", dsn),
		fmt.Sprintf("replicas: {id: solo, advertise: {api: \"https://%s\", agents: \"https://%s\"}}\n", api, agents)))
	r.startAgents(func(int) []string { return []string{agents} })
	awaitWithin(t, deadline, "every agent to report", func() bool { return r.count(p, reporting) == instances })

	r.writeFleet("enabled")
	awaitWithin(t, deadline, "the rollout to start", func() bool { return r.count(p, verified) >= 1 })
	db.Restart(t)
	for range kills {
		a := r.agents[rand.IntN(len(r.agents))]
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
		a.kill()
		a.start()
	}
	awaitWithin(t, deadline, "the replica to lose its leadership with its session, and lead again", func() bool {
		logs := p.logs.String()
		i := strings.Index(logs, "lost the leadership")
		return i >= 0 && strings.Contains(logs[i:], "leading: reconciling the fleet")
	})
	awaitWithin(t, deadline, "the rollout to converge", func() bool { return r.count(p, verified) == instances })
	r.checkIssuance(2 * (kills + 1))
}
