package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve serves h on ln over TLS with cfg until ctx is done, then shuts
// down gracefully (waiting up to grace for requests in flight). A long
// poll handler needs writeTimeout above its longest wait.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg *tls.Config, writeTimeout, grace time.Duration, log *slog.Logger, opts ...ServeOption) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug), // TLS handshake noise from scanners
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	sc := serveConfig{srv: srv}
	for _, o := range opts {
		o(&sc)
	}
	serve := func() error { return srv.ServeTLS(ln, "", "") }
	if sc.wrap != nil {
		wrapped := sc.wrap(ln, cfg)
		if cc, ok := wrapped.(interface {
			ConnContext(context.Context, net.Conn) context.Context
		}); ok {
			srv.ConnContext = cc.ConnContext
		}
		serve = func() error { return srv.Serve(wrapped) }
	}
	done := make(chan error, 1)
	go func() { done <- serve() }()
	select {
	case err := <-done:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(shut)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	return nil
}

// ServeOption tunes Serve's server.
type ServeOption func(*serveConfig)

type serveConfig struct {
	srv  *http.Server
	wrap func(net.Listener, *tls.Config) net.Listener
}

// TLSListener has wrap terminate TLS on the listener, with Serve's
// configuration, in place of the server: transport.NewListener does, so
// that it can hand a connection back after a hijack (a parked poll). If
// the wrapped listener has a ConnContext method, it becomes the server's.
// The server's timeouts stay: a listener that hands a connection back
// does so once its client has sent the next request.
func TLSListener(wrap func(net.Listener, *tls.Config) net.Listener) ServeOption {
	return func(c *serveConfig) { c.wrap = wrap }
}

// HTTP1Only serves HTTP/1.1 alone, no HTTP/2: for the agents' endpoint,
// where each agent holds one long poll at a time on a connection of its
// own, and HTTP/2 would only add its buffers and a goroutine per
// connection (at 10,000 agents, hundreds of megabytes).
func HTTP1Only() ServeOption {
	return func(c *serveConfig) {
		var p http.Protocols
		p.SetHTTP1(true)
		c.srv.Protocols = &p
	}
}
