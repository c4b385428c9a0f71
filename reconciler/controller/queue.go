package controller

import (
	"math/rand/v2"
	"sync"
	"time"
)

// queue hands instance names to workers: each name at most once in the
// queue and never to two workers at once (a name added while a worker
// has it runs again afterwards), with exponential backoff and full
// jitter for names that failed.
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	order    []string
	queued   map[string]bool
	active   map[string]bool
	again    map[string]bool // added while active
	failures map[string]int
	timers   map[string]*time.Timer // names backing off, until their retry
	closed   bool
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, active: map[string]bool{}, again: map[string]bool{},
		failures: map[string]int{}, timers: map[string]*time.Timer{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues name unless it is queued already.
func (q *queue) add(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(name)
}

// A name backing off after a failure waits for its retry: an agent that
// keeps reporting the same failure must not make the controller retry at
// once (and issue a certificate each time). kick skips the wait.
func (q *queue) addLocked(name string) {
	switch {
	case q.closed || q.queued[name] || q.timers[name] != nil:
	case q.active[name]:
		q.again[name] = true
	default:
		q.queued[name] = true
		q.order = append(q.order, name)
		q.cond.Signal()
	}
}

// get waits for a name; false once the queue is closed.
func (q *queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	name := q.order[0]
	q.order = q.order[1:]
	delete(q.queued, name)
	q.active[name] = true
	return name, true
}

// done ends a worker's turn on name: a failure queues it again after a
// backoff, a success forgets its failures.
func (q *queue) done(name string, failed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, name)
	if failed {
		q.failures[name]++
		wait := backoff(q.failures[name])
		if t := q.timers[name]; t != nil {
			t.Stop()
		}
		q.timers[name] = time.AfterFunc(wait, func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			delete(q.timers, name)
			q.addLocked(name)
		})
	} else {
		delete(q.failures, name)
	}
	if q.again[name] {
		delete(q.again, name)
		q.addLocked(name)
	}
}

// kick queues name now, even if it is backing off: its desired state
// changed, so the reason it failed may be gone.
func (q *queue) kick(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.timers[name]; t != nil {
		t.Stop()
		delete(q.timers, name)
	}
	q.addLocked(name)
}

// failuresOf returns how many times in a row name failed.
func (q *queue) failuresOf(name string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[name]
}

// close wakes every worker to stop and cancels pending retries.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, t := range q.timers {
		t.Stop()
	}
	q.cond.Broadcast()
}

// backoff is the wait after n failures in a row: exponential from 1s to
// 5 minutes, half of it random ("equal jitter"), so a fleet that failed
// together (Vault was down) does not come back in step, yet no retry
// comes sooner than half the bound.
func backoff(n int) time.Duration {
	bound := min(time.Second<<min(n-1, 9), 5*time.Minute)
	return bound/2 + time.Duration(rand.Int64N(int64(bound/2)+1))
}
