package hashicorp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/vault"
)

// Config says where Vault is and how to use it. The zero values of the
// mount, role and key names are Bootstrap's defaults.
type Config struct {
	Address   string // https://vault.example.com:8200
	Namespace string // Vault Enterprise namespace, if any
	CACert    string // PEM file that verifies Vault's own TLS certificate

	// Token authenticates directly; it is used when AppRole is unset.
	Token vault.Secret
	// AppRole authenticates with a role-id and a secret-id read from a
	// file (so the secret never sits in the configuration).
	AppRole *AppRole

	PKIMount     string // default "pki"
	Role         string // PKI role for EC certificates, default "reconciler"
	RSARole      string // PKI role for RSA certificates, default "reconciler-rsa"
	TransitMount string // default "transit"
	TransitKey   string // default "reconciler"

	// Timeout bounds one HTTP request (default 30s); Retry bounds the
	// retries of one operation.
	Timeout time.Duration
	Retry   Backoff
}

// AppRole is an AppRole login.
type AppRole struct {
	Mount        string // default "approle"
	RoleID       string
	SecretIDFile string
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.PKIMount, "pki")
	def(&c.Role, "reconciler")
	def(&c.RSARole, "reconciler-rsa")
	def(&c.TransitMount, "transit")
	def(&c.TransitKey, "reconciler")
	if c.AppRole != nil {
		def(&c.AppRole.Mount, "approle")
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	c.Retry.setDefaults()
}

// Option configures New.
type Option func(*Client)

// WithLogger sets the logger (nil, the default, discards).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithRegisterer registers the client's metrics (none are registered
// otherwise).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *Client) { c.reg = r } }

// Client is the Vault key provider: a vault.Issuer, vault.KeyWrapper and
// vault.MasterRotator. It is safe for concurrent use.
type Client struct {
	cfg     Config
	api     *api.Client
	log     *slog.Logger
	reg     prometheus.Registerer
	metrics *metrics

	loginMu sync.Mutex // one login at a time
	stop    context.CancelFunc
	done    chan struct{}
}

var (
	_ vault.Issuer        = (*Client)(nil)
	_ vault.KeyWrapper    = (*Client)(nil)
	_ vault.MasterRotator = (*Client)(nil)
)

// idleConnsPerHost is how many idle connections to Vault are kept: more
// than the calls the controller makes at once (its concurrency, 8 by
// default, and the renewal).
const idleConnsPerHost = 32

// New connects to Vault and logs in. Token renewal runs in the background
// until ctx is done or Close is called.
func New(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	cfg.setDefaults()
	c := &Client{cfg: cfg, done: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.metrics = newMetrics(c.reg)

	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("configure vault client: %w", ac.Error)
	}
	ac.Address = cfg.Address
	ac.Timeout = cfg.Timeout
	ac.MaxRetries = 0 // this package retries, with its own classification
	if t, ok := ac.HttpClient.Transport.(*http.Transport); ok {
		// The default keeps GOMAXPROCS+1 idle connections: fewer than the
		// controller's workers, which then dial (and on HTTPS shake hands)
		// again for most calls.
		t.MaxIdleConnsPerHost = idleConnsPerHost
	}
	if cfg.CACert != "" {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("configure vault TLS: %w", err)
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("create vault client: %w", err)
	}
	client.ClearToken() // never pick VAULT_TOKEN up implicitly
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	c.api = client

	secret, err := c.login(ctx)
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = stop
	go c.renew(rctx, secret)
	return c, nil
}

// Close stops token renewal.
func (c *Client) Close() error {
	c.stop()
	<-c.done
	return nil
}

// login authenticates and returns the auth secret (nil for a token that
// cannot be looked up).
func (c *Client) login(ctx context.Context) (*api.Secret, error) {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if c.cfg.AppRole == nil {
		if len(c.cfg.Token) == 0 {
			return nil, fmt.Errorf("log in to vault: %w: no token and no AppRole configured", vault.ErrDenied)
		}
		c.api.SetToken(string(c.cfg.Token.Bytes()))
		var self *api.Secret
		err := c.do(ctx, "auth", "lookup-self", "auth/token/lookup-self", func(ctx context.Context) error {
			var err error
			self, err = c.api.Auth().Token().LookupSelfWithContext(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("log in to vault: %w", err)
		}
		return tokenAsAuth(self), nil
	}
	ar := c.cfg.AppRole
	secretID, err := os.ReadFile(ar.SecretIDFile)
	if err != nil {
		return nil, fmt.Errorf("read AppRole secret-id: %w", err)
	}
	path := "auth/" + ar.Mount + "/login"
	var secret *api.Secret
	err = c.do(ctx, "auth", "login", path, func(ctx context.Context) error {
		var err error
		secret, err = c.api.Logical().WriteWithContext(ctx, path, map[string]any{
			"role_id":   ar.RoleID,
			"secret_id": strings.TrimSpace(string(secretID)),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("log in to vault with AppRole: %w", err)
	}
	if secret == nil || secret.Auth == nil {
		return nil, errors.New("log in to vault with AppRole: no token in the answer")
	}
	c.api.SetToken(secret.Auth.ClientToken)
	c.log.InfoContext(ctx, "logged in to vault", "method", "approle", "ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second)
	return secret, nil
}

// tokenAsAuth turns a token lookup into the auth secret the lifetime
// watcher renews, or nil when the token never expires (a root token).
func tokenAsAuth(self *api.Secret) *api.Secret {
	if self == nil {
		return nil
	}
	ttl, _ := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	if ttl == 0 || !renewable {
		return nil
	}
	return &api.Secret{Auth: &api.SecretAuth{Renewable: true, LeaseDuration: int(ttl.Seconds())}}
}

// renew keeps the token alive with the API's lifetime watcher and logs in
// again when renewal ends (max TTL reached, token revoked), with backoff
// while Vault is away.
func (c *Client) renew(ctx context.Context, secret *api.Secret) {
	defer close(c.done)
	for {
		if secret != nil {
			if secret.Auth != nil && secret.Auth.ClientToken == "" {
				secret.Auth.ClientToken = c.api.Token()
			}
			w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
			if err != nil {
				c.log.ErrorContext(ctx, "cannot watch the vault token", "error", err)
				return
			}
			go w.Start()
			if !c.watch(ctx, w) {
				w.Stop()
				return
			}
			w.Stop()
		} else {
			if c.cfg.AppRole == nil {
				return // a token that never expires needs no renewal
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.cfg.Retry.Max):
			}
		}
		var err error
		if secret, err = c.login(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.WarnContext(ctx, "vault login failed; retrying", "error", err)
			secret = nil
		}
	}
}

// watch follows one watcher until it ends (true: log in again) or ctx is
// done (false).
func (c *Client) watch(ctx context.Context, w *api.LifetimeWatcher) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case err := <-w.DoneCh():
			c.metrics.renewals.WithLabelValues("ended").Inc()
			c.log.InfoContext(ctx, "vault token renewal ended; logging in again", "error", err)
			return true
		case <-w.RenewCh():
			c.metrics.renewals.WithLabelValues("renewed").Inc()
		}
	}
}
