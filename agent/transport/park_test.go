package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent"
)

// parking is the fixture's server served as the daemon serves it: an
// http.Server on a Listener, over a TCP listener that counts connections.
type parking struct {
	url      string
	listener *Listener
	accepted *atomic.Int64
}

func (f *fixture) parking() *parking {
	f.t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	counted := &countingListener{Listener: tcp}
	l := NewListener(counted, f.https.TLS) // the fixture's certificate, which f.roots trusts
	// Short timeouts, so that a test can outwait them: a connection handed
	// back must not be held to them before its agent speaks.
	srv := &http.Server{Handler: f.server.Handler(), ConnContext: l.ConnContext,
		ReadHeaderTimeout: headerTimeout, ReadTimeout: 2 * headerTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	f.t.Cleanup(func() {
		srv.Close()
		l.Close()
		<-done
	})
	return &parking{url: "https://" + tcp.Addr().String(), listener: l, accepted: &counted.n}
}

// headerTimeout is the parking fixture's server's ReadHeaderTimeout.
const headerTimeout = 300 * time.Millisecond

type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func (f *fixture) parkedClient(p *parking, name string, wait time.Duration) *Client {
	f.t.Helper()
	if err := f.server.Register(name, Keys{Current: key(1, 0x11)}); err != nil {
		f.t.Fatal(err)
	}
	token, err := f.tokens.Issue(name)
	if err != nil {
		f.t.Fatal(err)
	}
	h := f.host(token)
	c, err := NewClient(ClientConfig{Instance: name, URL: p.url, RootCAs: f.roots, StateDir: h.state, TokenFile: h.token, Wait: wait},
		WithClientLogger(f.logger()))
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// servingGoroutines counts the goroutines net/http runs for connections.
func servingGoroutines(t *testing.T) int {
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(block, "net/http.(*conn).serve") {
			var count int
			if _, err := fmt.Sscan(block, &count); err == nil {
				n += count
			}
		}
	}
	return n
}

// TestParkedPollsHoldNoGoroutine parks the polls of many agents and
// checks that net/http serves none of their connections meanwhile, that
// a publish answers one at once, and that the rest answer when their wait
// is over, each on the connection it came on.
func TestParkedPollsHoldNoGoroutine(t *testing.T) {
	f := newFixture(t)
	p := f.parking()
	const agents = 20
	const wait = 2 * time.Second
	clients := make([]*Client, agents)
	for i := range clients {
		clients[i] = f.parkedClient(p, "db-"+string(rune('a'+i)), wait)
		firstPoll(t, f, clients[i])
	}
	opened := p.accepted.Load()
	start := time.Now()
	type result struct {
		d   *agent.Desired
		err error
		at  time.Duration
	}
	results := make([]result, agents)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := c.Poll(context.Background(), agent.Status{Instance: c.cfg.Instance, Phase: agent.Active, Generation: 1})
			results[i] = result{d, err, time.Since(start)}
		}()
	}
	deadline := time.Now().Add(time.Second)
	for parkedCount(f.server) < agents && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := parkedCount(f.server); n != agents {
		t.Fatalf("%d polls parked, want %d", n, agents)
	}
	// The last handlers to park return just after they did: give their
	// connections' goroutines a moment to end.
	for end := time.Now().Add(time.Second); servingGoroutines(t) != 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := servingGoroutines(t); n != 0 {
		t.Errorf("net/http serves %d connections while every poll is parked, want 0", n)
	}
	if err := f.server.Publish("db-a", agent.Desired{Generation: 2}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("agent %d: %v", i, r.err)
		case i == 0 && (r.d == nil || r.d.Generation != 2 || r.at > wait/2):
			t.Errorf("the published agent got %+v after %s, want generation 2 at once", r.d, r.at)
		case i > 0 && (r.d != nil || r.at < wait):
			t.Errorf("agent %d got %+v after %s, want nothing once the wait (%s) was over", i, r.d, r.at, wait)
		}
	}
	if n := p.accepted.Load() - opened; n != 0 {
		t.Errorf("the parked polls' agents opened %d new connections, want their own reused", n)
	}
}

// TestParkedPollOfAnUnregisteredInstance checks that a parked poll is
// answered unknown_instance when its instance goes, as a held one is.
func TestParkedPollOfAnUnregisteredInstance(t *testing.T) {
	f := newFixture(t)
	p := f.parking()
	c := f.parkedClient(p, "orders-db", 10*time.Second)
	status := firstPoll(t, f, c)
	errc := parkPoll(t, f, c, status)
	f.server.Unregister("orders-db")
	select {
	case err := <-errc:
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Reason != "unknown_instance" {
			t.Errorf("the parked poll of an unregistered instance: %v, want unknown_instance", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the parked poll was not answered when its instance went")
	}
}

// TestListenerCloseEndsParkedPolls checks that closing the listener (the
// daemon shutting down) ends the parked polls rather than leaving them.
func TestListenerCloseEndsParkedPolls(t *testing.T) {
	f := newFixture(t)
	p := f.parking()
	c := f.parkedClient(p, "orders-db", 10*time.Second)
	status := firstPoll(t, f, c)
	errc := parkPoll(t, f, c, status)
	p.listener.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a poll parked on a closed listener succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the listener left the parked poll waiting")
	}
}

// firstPoll enrolls c and takes generation 1 at once, and returns the
// status after it: the next poll has nothing to take, and parks.
func firstPoll(t *testing.T, f *fixture, c *Client) agent.Status {
	t.Helper()
	name := c.cfg.Instance
	if err := f.server.Publish(name, agent.Desired{Generation: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background(), agent.Status{Instance: name, Phase: agent.Pending}); err != nil {
		t.Fatal(err)
	}
	return agent.Status{Instance: name, Phase: agent.Active, Generation: 1}
}

// parkPoll polls with c in the background, waits until the poll is
// parked, and returns where its error comes.
func parkPoll(t *testing.T, f *fixture, c *Client, status agent.Status) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background(), status)
		errc <- err
	}()
	waitParked(t, f.server, 1)
	return errc
}

func parkedCount(s *Server) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, inst := range s.instances {
		inst.mu.Lock()
		if inst.parked != nil {
			n++
		}
		inst.mu.Unlock()
	}
	return n
}

func waitParked(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for parkedCount(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls parked after 5s, want %d", parkedCount(s), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestANewPollEndsTheOneParkedBefore checks that a second poll of the
// same agent (from a new connection: its agent restarted, or lost the
// old one) answers the one parked before at once, and that the old
// connection is let go rather than kept.
func TestANewPollEndsTheOneParkedBefore(t *testing.T) {
	f := newFixture(t)
	p := f.parking()
	c := f.parkedClient(p, "orders-db", 10*time.Second)
	status := firstPoll(t, f, c)
	start := time.Now()
	first := parkPoll(t, f, c, status)
	// The agent restarts: a new client on the same state directory, on
	// a connection of its own.
	restarted, err := NewClient(c.cfg, WithClientLogger(f.logger()))
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		_, err := restarted.Poll(context.Background(), status)
		second <- err
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("the poll parked before: %v", err)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("the poll parked before was answered after %s, not when the next came", waited)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a new poll left the one parked before waiting")
	}
	waitParked(t, f.server, 1)
	p.listener.mu.Lock()
	held := len(p.listener.parked)
	p.listener.mu.Unlock()
	if held != 1 {
		t.Errorf("the listener holds %d parked connections, want 1: the new poll's", held)
	}
	if err := f.server.Publish("orders-db", agent.Desired{Generation: 2}); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Errorf("the new poll: %v", err)
	}
}

// TestAHandedBackConnectionWaitsForTheAgent checks that an agent that
// takes longer than the server's header and read timeouts to come back
// after a parked reply (it was applying what it got) is served on the
// same connection, as on an idle one.
func TestAHandedBackConnectionWaitsForTheAgent(t *testing.T) {
	f := newFixture(t)
	p := f.parking()
	c := f.parkedClient(p, "orders-db", 10*time.Second)
	status := firstPoll(t, f, c)
	opened := p.accepted.Load()
	for gen := uint64(2); gen <= 3; gen++ {
		errc := parkPoll(t, f, c, status)
		if err := f.server.Publish("orders-db", agent.Desired{Generation: gen}); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("poll for generation %d: %v", gen, err)
		}
		status.Generation = gen
		time.Sleep(3 * headerTimeout) // applying, longer than the server's timeouts
	}
	if n := p.accepted.Load() - opened; n != 0 {
		t.Errorf("the agent opened %d new connections after coming back slowly, want its own reused", n)
	}
}
