package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Parking. A held poll in net/http costs its connection's goroutine, the
// goroutine that watches the connection for the client going away, and
// about 10 KB of buffers, for all of the heartbeat: at 10,000 agents,
// most of the daemon's memory. A Server whose requests come through a
// Listener parks a poll that has to wait instead: it takes the
// connection from net/http (a hijack), keeps only the TLS connection, the
// request ID and a timer, and answers when the desired state changes or
// the wait is over. It then hands the connection back to the Listener,
// whose http.Server serves the agent's next request on it as on a new
// connection, without a new handshake.
//
// A parked poll does not notice its agent going away until it answers
// (at the latest when the wait is over), as a held one would on its next
// write; the agent's next poll answers a poll still parked for its
// instance at once.

// replyWriteTimeout bounds the write of a parked poll's reply;
// handBackWait is how long a connection waits after the reply for its
// agent's next request (as long as the daemon keeps an idle connection).
const (
	replyWriteTimeout = 10 * time.Second
	handBackWait      = 2 * time.Minute
)

// Listener terminates TLS for a Server's agents and takes connections
// back after a parked poll's reply. Serve it with an http.Server whose
// ConnContext is the Listener's (http.Server.Serve, not ServeTLS: the
// connections are TLS already). Close closes the listener and every
// connection parked on it.
type Listener struct {
	tcp  net.Listener
	tls  *tls.Config
	back chan net.Conn // connections given back after a parked reply
	acc  chan accepted
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	parked map[*parked]struct{}
}

type accepted struct {
	conn net.Conn
	err  error
}

// NewListener wraps l, whose connections it serves with TLS under cfg
// (HTTP/1.1 only: a parked connection is an HTTP/1.1 one).
func NewListener(l net.Listener, cfg *tls.Config) *Listener {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	pl := &Listener{tcp: l, tls: cfg, back: make(chan net.Conn), acc: make(chan accepted),
		done: make(chan struct{}), parked: map[*parked]struct{}{}}
	go pl.accept()
	return pl
}

// accept feeds Accept from the TCP listener until it is closed.
func (l *Listener) accept() {
	for {
		c, err := l.tcp.Accept()
		select {
		case l.acc <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Accept returns the next connection: a new one, wrapped in TLS, or one a
// parked poll gave back.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	case a := <-l.acc:
		if a.err != nil {
			return nil, a.err
		}
		return tls.Server(a.conn, l.tls), nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes every parked connection.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.tcp.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		for p := range l.parked {
			p.conn.Close()
		}
		clear(l.parked)
	})
	return err
}

// Addr is the TCP listener's address.
func (l *Listener) Addr() net.Addr { return l.tcp.Addr() }

// ConnContext is for http.Server.ConnContext: it lets the Server park the
// polls of connections from l.
func (l *Listener) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, parkingKey{}, l)
}

type parkingKey struct{}

func (l *Listener) add(p *parked) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	l.parked[p] = struct{}{}
	return true
}

func (l *Listener) remove(p *parked) {
	l.mu.Lock()
	delete(l.parked, p)
	l.mu.Unlock()
}

// giveBack hands c to Accept once its agent sends its next request
// (awaitRequest), or closes it if the agent does not within
// handBackWait or the listener is closed.
func (l *Listener) giveBack(c net.Conn) {
	go func() {
		if err := awaitRequest(c, handBackWait); err != nil {
			c.Close()
			return
		}
		select {
		case l.back <- c:
		case <-l.done:
			c.Close()
		}
	}()
}

// parked is a poll waiting for a change without its goroutine.
type parked struct {
	s       *Server
	l       *Listener
	inst    *instance
	conn    net.Conn
	id      []byte
	applied uint64 // the generation the agent reported
	sealed  bool
	reuse   bool // false: the client sent more than the request; close after the reply
	timer   *time.Timer
}

// park takes the poll's connection from net/http and parks it, and
// reports whether it did; if not, the handler waits the usual way.
func (s *Server) park(w http.ResponseWriter, r *http.Request, inst *instance, req pollRequest, sealed bool, wait time.Duration) bool {
	l, ok := r.Context().Value(parkingKey{}).(*Listener)
	if !ok || wait <= 0 || !r.ProtoAtLeast(1, 1) || r.Close {
		return false
	}
	inst.mu.Lock()
	ready := inst.ready(req.Status.Generation)
	// Nothing authenticates a plaintext poll: it does not end one parked
	// before it (anyone could make the agent's polls return), and is held.
	displaces := inst.parked != nil && !sealed
	inst.mu.Unlock()
	if ready || displaces {
		return false // the reply is there, or the poll is held the usual way
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	p := &parked{s: s, l: l, inst: inst, conn: conn, id: req.ID, applied: req.Status.Generation, sealed: sealed,
		reuse: rw.Reader.Buffered() == 0}
	if !l.add(p) {
		conn.Close()
		return true
	}
	inst.mu.Lock()
	old := inst.parked
	var oldReply pollReply
	if old != nil {
		// The agent polls again (from a new connection: its old one is
		// likely dead): the poll before is over, answered with what there is.
		oldReply = inst.replyLocked(old.applied)
	}
	inst.parked = p
	p.timer = time.AfterFunc(wait, p.answer)
	ready = inst.ready(p.applied) // a change between the first look and now
	inst.mu.Unlock()
	if old != nil {
		go old.reply(oldReply)
	}
	if ready {
		p.answer()
	}
	return true
}

// ready reports whether a poll at generation applied has something to
// take; inst.mu is held.
func (inst *instance) ready(applied uint64) bool {
	return (inst.desired != nil && inst.desired.Generation > applied) || inst.next != 0
}

// answer replies to the parked poll, if it is still its instance's, with
// what there is now (maybe nothing: the wait is over).
func (p *parked) answer() {
	inst := p.inst
	inst.mu.Lock()
	if inst.parked != p {
		inst.mu.Unlock()
		return
	}
	inst.parked = nil
	reply := inst.replyLocked(p.applied)
	inst.mu.Unlock()
	p.reply(reply)
}

// reply writes reply to the parked poll, which is no longer its
// instance's parked poll (so nothing else replies), and gives the
// connection back.
func (p *parked) reply(reply pollReply) {
	inst := p.inst
	p.timer.Stop()
	p.l.remove(p)

	var resp []byte
	if p.s.lookup(inst.name) != inst {
		resp = rawResponse(http.StatusNotFound, "text/plain; charset=utf-8", []byte("unknown_instance\n"), p.reuse)
	} else if data, err := p.s.sealReply(context.Background(), inst, reply, p.id, p.sealed); err != nil {
		resp = rawResponse(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("seal_failed\n"), p.reuse)
	} else {
		resp = rawResponse(http.StatusOK, "application/octet-stream", data, p.reuse)
	}
	p.conn.SetWriteDeadline(time.Now().Add(replyWriteTimeout))
	_, err := p.conn.Write(resp)
	if err != nil || !p.reuse {
		p.conn.Close()
		return
	}
	p.conn.SetWriteDeadline(time.Time{})
	p.l.giveBack(p.conn)
}

// rawResponse is an HTTP/1.1 response, as net/http would have written it
// for the handler.
func rawResponse(code int, contentType string, body []byte, keepAlive bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nDate: %s\r\n",
		code, http.StatusText(code), contentType, len(body), time.Now().UTC().Format(http.TimeFormat))
	if !keepAlive {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}
