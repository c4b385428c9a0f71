package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/api"
	"github.com/reconciler-dev/reconciler/reconciler/config"
	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/postgres"
	"github.com/reconciler-dev/reconciler/sources"
)

// A service serves the API and the agents' endpoint for as long as it runs,
// and reconciles while it leads: always on SQLite, and on PostgreSQL while
// it holds the leadership. A follower forwards every request but its own
// health and metrics to the leader, so agents and clients may reach any
// replica.
type service struct {
	cfg       *config.Config
	log       *slog.Logger
	reg       *prometheus.Registry // the process's metrics, for every term
	providers controller.Providers
	source    sources.Source
	revision  string
	verify    func(ctx context.Context, from, to string) error // nil: every revision is taken
	tokens    *transport.TokenDir
	apiTokens *api.Tokens
	webhook   http.Handler // nil: no webhook endpoint

	current atomic.Pointer[leaderTerm] // nil while following
	leaders *leaderCache               // nil on SQLite
	leading prometheus.Gauge
}

// leaderTerm is one stretch of leadership: the agents' server and the
// controller, built from the store when it began. A replica that loses the
// leadership drops its term, and builds a new one if it wins again, so
// nothing it held in memory outlives the leadership it was true under.
type leaderTerm struct {
	ctl    *controller.Controller
	api    http.Handler
	agents http.Handler
}

func newService(cfg *config.Config, log *slog.Logger, reg *prometheus.Registry) *service {
	d := &service{cfg: cfg, log: log, reg: reg,
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "reconciler_leader",
			Help: "1 while this replica leads (reconciles), 0 while it follows and forwards."})}
	reg.MustRegister(d.leading)
	return d
}

// trigger asks the leading term's controller to read the source now.
func (d *service) trigger() {
	if t := d.current.Load(); t != nil {
		t.ctl.Trigger()
	}
}

// lead reconciles with st until ctx ends, serving the term's handlers.
func (d *service) lead(ctx context.Context, st store.Store) error {
	reg := prometheus.NewRegistry() // this term's metrics, gone with it
	var ctl *controller.Controller
	agents := transport.NewServer(transport.WithTokens(d.tokens), transport.WithPlaintextAllowed(d.cfg.Agents.AllowPlaintext),
		transport.WithServerLogger(d.log), transport.WithServerRegisterer(reg),
		transport.WithStatusHook(func(ctx context.Context, s agent.Status) { ctl.AgentReported(ctx, s) }),
		transport.WithKeyPromotedHook(func(ctx context.Context, name string, v uint32) { ctl.KeyPromoted(ctx, name, v) }))
	cfg := d.cfg
	ctl = controller.New(controller.Config{
		Source: d.source, Revision: d.revision, Instances: cfg.Fleet.Instances, Policies: cfg.Fleet.Policies,
		RequirePolicies: cfg.Fleet.RequirePolicies, PolicyOptions: policyOptions(cfg.Fleet), Defaults: defaults(cfg),
		Providers: d.providers, Store: st, Agents: agents, Concurrency: cfg.Reconcile.Concurrency,
		Poll: pollInterval(cfg), Resync: time.Duration(cfg.Reconcile.Resync), Prune: cfg.Reconcile.Prune,
		Verify: d.verify,
	}, controller.WithLogger(d.log), controller.WithRegisterer(reg))
	metrics := promhttp.HandlerFor(prometheus.Gatherers{d.reg, reg}, promhttp.HandlerOpts{})
	t := &leaderTerm{ctl: ctl, api: api.NewHandler(ctl, d.apiTokens, api.Routes{Metrics: metrics, Webhook: d.webhook}),
		agents: agents.Handler()}
	d.current.Store(t)
	defer d.current.CompareAndSwap(t, nil)
	d.leading.Set(1)
	defer d.leading.Set(0)
	return ctl.Run(ctx)
}

// replicate campaigns for the leadership on st and leads while it holds
// it, until ctx ends.
func (d *service) replicate(ctx context.Context, st *postgres.Store) error {
	addr, err := json.Marshal(advertised{API: d.cfg.Replicas.Advertise.API, Agents: d.cfg.Replicas.Advertise.Agents})
	if err != nil {
		return fmt.Errorf("encode advertised addresses: %w", err)
	}
	changes := prometheus.NewCounter(prometheus.CounterOpts{Name: "reconciler_leader_terms_total",
		Help: "Times this replica became the leader."})
	d.reg.MustRegister(changes)
	for {
		d.log.InfoContext(ctx, "campaigning for the leadership", "replica", d.cfg.Replicas.ID)
		l, err := st.Campaign(ctx, d.cfg.Replicas.ID, string(addr))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.ErrorContext(ctx, "cannot campaign for the leadership; trying again", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		changes.Inc()
		d.log.InfoContext(ctx, "leading: reconciling the fleet", "replica", d.cfg.Replicas.ID, "epoch", l.Epoch())
		termCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-l.Done():
			case <-termCtx.Done():
			}
			cancel()
		}()
		err = d.lead(termCtx, st)
		cancel()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		l.Resign(rctx)
		rcancel()
		if ctx.Err() != nil {
			return err
		}
		d.log.WarnContext(ctx, "lost the leadership; following, and campaigning again", "replica", d.cfg.Replicas.ID, "error", err)
	}
}

// advertised is what the leader records of where it listens.
type advertised struct {
	API    string `json:"api"`
	Agents string `json:"agents"`
}

// apiHandler serves the API: the leading term's, or, while following,
// health, readiness and metrics of its own and everything else forwarded.
func (d *service) apiHandler() http.Handler {
	metrics := promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{})
	forward := d.forwarder(func(a advertised) string { return a.API })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := d.current.Load(); t != nil {
			t.api.ServeHTTP(w, r)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/healthz":
			writeStatus(w, http.StatusOK, "ok", "")
		case r.Method == http.MethodGet && r.URL.Path == "/metrics":
			metrics.ServeHTTP(w, r)
		case r.Method == http.MethodGet && r.URL.Path == "/readyz":
			if _, ok := d.leaderAddr(r.Context()); ok {
				writeStatus(w, http.StatusOK, "ready", "following: requests are forwarded to the leader")
			} else {
				writeStatus(w, http.StatusServiceUnavailable, "no leader yet", "")
			}
		default:
			forward.ServeHTTP(w, r)
		}
	})
}

// agentsHandler serves the agents: the leading term's server, or, while
// following, a forward to the leader's.
func (d *service) agentsHandler() http.Handler {
	forward := d.forwarder(func(a advertised) string { return a.Agents })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := d.current.Load(); t != nil {
			t.agents.ServeHTTP(w, r)
			return
		}
		forward.ServeHTTP(w, r)
	})
}

func writeStatus(w http.ResponseWriter, code int, status, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"status": status, "detail": detail})
}

// forwarder proxies a request to the leader's listener that pick chooses;
// with no leader to reach it answers 503 with Retry-After, which agents
// and clients retry.
func (d *service) forwarder(pick func(advertised) string) http.Handler {
	if d.leaders == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeStatus(w, http.StatusServiceUnavailable, "starting", "")
		})
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target, _ := pr.In.Context().Value(targetKey{}).(*url.URL)
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:     d.leaders.transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			d.leaders.forget()
			d.log.WarnContext(r.Context(), "cannot forward to the leader", "error", err)
			w.Header().Set("Retry-After", "1")
			writeStatus(w, http.StatusBadGateway, "the leader cannot be reached", "retry: a new leader takes over within seconds")
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := d.leaderAddr(r.Context())
		target, err := url.Parse(pick(a))
		if !ok || err != nil || target.Host == "" {
			w.Header().Set("Retry-After", "1")
			writeStatus(w, http.StatusServiceUnavailable, "no leader yet", "retry: replicas elect one within seconds")
			return
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, target)))
	})
}

type targetKey struct{}

// leaderAddr returns where the current leader listens, if another
// replica leads.
func (d *service) leaderAddr(ctx context.Context) (advertised, bool) {
	if d.leaders == nil {
		return advertised{}, false
	}
	return d.leaders.get(ctx)
}

// leaderCache remembers, for a second, who leads.
type leaderCache struct {
	store     *postgres.Store
	self      string
	transport *http.Transport
	log       *slog.Logger

	mu   sync.Mutex
	addr advertised
	ok   bool
	at   time.Time
}

func newLeaderCache(st *postgres.Store, self string, roots *x509.CertPool, log *slog.Logger) *leaderCache {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 1024 // every agent's long poll is one connection to the leader
	return &leaderCache{store: st, self: self, transport: tr, log: log}
}

func (c *leaderCache) get(ctx context.Context) (advertised, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < time.Second {
		return c.addr, c.ok
	}
	c.at, c.ok = time.Now(), false
	l, err := c.store.Leader(ctx)
	if err != nil {
		c.log.WarnContext(ctx, "cannot read who leads", "error", err)
		return c.addr, false
	}
	if !l.Held || l.ID == c.self {
		return c.addr, false // nobody, or this replica between terms
	}
	if err := json.Unmarshal([]byte(l.Address), &c.addr); err != nil {
		c.log.WarnContext(ctx, "the leader's recorded address is damaged", "leader", l.ID, "error", err)
		return c.addr, false
	}
	c.ok = true
	return c.addr, true
}

// forget drops what is cached, after a failed forward.
func (c *leaderCache) forget() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// replicaRoots is the pool that verifies the other replicas: the
// configured CA file, or the CA this daemon's own certificate came from.
func replicaRoots(cfg *config.Config, caFile string) (*x509.CertPool, error) {
	file := cfg.Replicas.CAFile
	if file == "" {
		file = caFile
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("replicas.caFile: %w (set it to the CA that issued the replicas' certificates)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("replicas.caFile: no PEM certificate in " + file)
	}
	return pool, nil
}
