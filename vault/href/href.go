package href

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/inline"
)

// Placeholder stands for the instance's name in URL templates. It is
// replaced by the name, path-escaped.
const Placeholder = "{instance}"

// Defaults of the options.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxSize      = inline.MaxFileSize
	DefaultMinRemaining = inline.DefaultMinRemaining
)

var _ vault.Issuer = (*Issuer)(nil)

// Issuer hands out the certificates it downloads for each instance. It is
// safe for concurrent use.
type Issuer struct {
	cert, key, ca string // URL templates
	caBundle      []byte
	caBundleURL   string

	public  *http.Client // certificates and CA chains
	private *http.Client // keys: it presents the client certificate
	token   vault.Secret // sent with key downloads only

	timeout      time.Duration
	maxSize      int64
	minRemaining time.Duration
}

type config struct {
	cert, key, ca string
	rootCAs       []byte
	token         vault.Secret
	tokenSet      bool
	clientCert    *tls.Certificate
	caBundle      []byte
	caBundleURL   string
	timeout       time.Duration
	maxSize       int64
	minRemaining  time.Duration
}

// Option configures an Issuer.
type Option func(*config)

// WithURLs sets the URL templates of an instance's tls.crt, tls.key and
// ca.crt, each an https:// URL in which Placeholder stands for the
// instance's name. Required.
func WithURLs(cert, key, ca string) Option {
	return func(c *config) { c.cert, c.key, c.ca = cert, key, ca }
}

// WithRootCAs sets the CA certificates (PEM) the servers' certificates
// must chain to, instead of the system's roots.
func WithRootCAs(pem []byte) Option { return func(c *config) { c.rootCAs = pem } }

// WithBearerToken sends token in an Authorization: Bearer header with
// every key download, and with nothing else. It appears in no error. The
// Issuer keeps a copy, so the caller may clear its own.
func WithBearerToken(token vault.Secret) Option {
	return func(c *config) { c.token, c.tokenSet = bytes.Clone(token), true }
}

// WithClientCertificate presents cert to the server of every key
// download, and of nothing else.
func WithClientCertificate(cert tls.Certificate) Option {
	return func(c *config) { c.clientCert = &cert }
}

// WithCABundle sets the fleet CA bundle CAChain returns: PEM
// certificates, root last.
func WithCABundle(pem []byte) Option { return func(c *config) { c.caBundle = pem } }

// WithCABundleURL sets the https:// URL CAChain downloads the fleet CA
// bundle from. Without it or WithCABundle, CAChain downloads the ca.crt
// URL of WithURLs if that URL names no instance.
func WithCABundleURL(u string) Option { return func(c *config) { c.caBundleURL = u } }

// WithTimeout bounds each download, from connecting to the end of the
// body (default DefaultTimeout). The request's context bounds it too.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxSize caps each download (default DefaultMaxSize): a larger
// answer is refused, not read.
func WithMaxSize(n int64) Option { return func(c *config) { c.maxSize = n } }

// WithMinRemaining sets how much validity a certificate must have left to
// be handed out (default DefaultMinRemaining).
func WithMinRemaining(d time.Duration) Option { return func(c *config) { c.minRemaining = d } }

// New returns an Issuer. It refuses URLs that are not https://, since keys
// must not cross the network in clear, and URLs that carry a user or
// password (use WithBearerToken).
func New(opts ...Option) (*Issuer, error) {
	c := config{timeout: DefaultTimeout, maxSize: DefaultMaxSize, minRemaining: DefaultMinRemaining}
	for _, o := range opts {
		o(&c)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("configure href issuer: %w", err)
	}
	var roots *x509.CertPool // nil: the system's
	if c.rootCAs != nil {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(c.rootCAs) {
			return nil, errors.New("configure href issuer: the root CAs (WithRootCAs) hold no PEM certificate")
		}
	}
	i := &Issuer{
		cert: c.cert, key: c.key, ca: c.ca,
		caBundleURL: c.caBundleURL,
		public:      newClient(roots, nil, c.timeout),
		private:     newClient(roots, c.clientCert, c.timeout),
		token:       c.token,
		timeout:     c.timeout, maxSize: c.maxSize, minRemaining: c.minRemaining,
	}
	if c.caBundle != nil {
		var err error
		if i.caBundle, err = inline.ValidateCAChain("the CA bundle (WithCABundle)", c.caBundle); err != nil {
			return nil, fmt.Errorf("configure href issuer: %w", err)
		}
	} else if i.caBundleURL == "" && !strings.Contains(c.ca, Placeholder) {
		i.caBundleURL = c.ca
	}
	return i, nil
}

func (c *config) check() error {
	if c.cert == "" && c.key == "" && c.ca == "" {
		return errors.New("no URLs: set the certificate, key and CA URLs with WithURLs")
	}
	for _, t := range []struct{ what, url string }{{"certificate", c.cert}, {"key", c.key}, {"CA", c.ca}} {
		if err := checkURL(t.what, t.url); err != nil {
			return err
		}
	}
	if c.caBundleURL != "" {
		if err := checkURL("CA bundle", c.caBundleURL); err != nil {
			return err
		}
		if strings.Contains(c.caBundleURL, Placeholder) {
			return fmt.Errorf("the CA bundle URL names an instance (%s): it is the fleet's, one for all instances", Placeholder)
		}
	}
	switch {
	case c.tokenSet && len(c.token) == 0:
		return errors.New("the bearer token is empty")
	case c.tokenSet && strings.ContainsFunc(string(c.token.Bytes()), func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return errors.New("the bearer token holds spaces, line breaks or other characters a header cannot carry; check how it was read (a trailing newline?)")
	case c.timeout <= 0:
		return fmt.Errorf("timeout %s is not positive", c.timeout)
	case c.maxSize <= 0:
		return fmt.Errorf("maximum size %d is not positive", c.maxSize)
	case c.minRemaining < 0:
		return fmt.Errorf("minimum remaining validity %s is negative", c.minRemaining)
	}
	return nil
}

// checkURL checks a URL template; its errors show it redacted.
func checkURL(what, tmpl string) error {
	if tmpl == "" {
		return fmt.Errorf("the %s URL is empty", what)
	}
	// The sentinel parses wherever a name can go, and goes back into the
	// URL the errors show.
	const sentinel = "x-instance-x"
	u, err := url.Parse(strings.ReplaceAll(tmpl, Placeholder, sentinel))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its message holds the whole URL
			err = ue.Err
		}
		return fmt.Errorf("the %s URL does not parse: %w", what, err)
	}
	shown := strings.ReplaceAll(redact(u), sentinel, Placeholder)
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("the %s URL %s is not https://: certificates and keys must not cross the network in clear", what, shown)
	case u.Host == "":
		return fmt.Errorf("the %s URL %s names no host", what, shown)
	case u.User != nil:
		return fmt.Errorf("the %s URL %s carries a user or password: pass a token with WithBearerToken instead", what, shown)
	}
	return nil
}

// Issue downloads the instance's tls.crt, tls.key and ca.crt and returns
// them once inline.Validate accepts them for req. An instance name that
// is not a plain name, a 4xx answer, an oversized answer and an untrusted
// server are refused with errors wrapping vault.ErrDenied; connection
// errors, timeouts and 5xx answers are not, as a retry may succeed. No
// error holds an answer's body, the token or a URL's query.
func (i *Issuer) Issue(ctx context.Context, req vault.CertificateRequest) (*vault.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", req.Instance, err)
	}
	if err := inline.CheckInstance(req.Instance); err != nil {
		return nil, err
	}
	var b inline.Bundle
	var err error
	if b.Cert, b.CertName, err = i.fetch(ctx, i.cert, req.Instance, inline.CertFile, false); err != nil {
		return nil, err
	}
	var key []byte
	key, b.KeyName, err = i.fetch(ctx, i.key, req.Instance, inline.KeyFile, true)
	if err != nil {
		return nil, err
	}
	b.Key = key
	defer clear(key)
	if b.CA, b.CAName, err = i.fetch(ctx, i.ca, req.Instance, inline.CAFile, false); err != nil {
		return nil, err
	}
	return inline.Validate(req, b, time.Now(), i.minRemaining)
}

// Revoke fails with an error wrapping errors.ErrUnsupported: the
// certificates came from the owner's CA, and only that CA can revoke them.
func (i *Issuer) Revoke(ctx context.Context, serial string) error {
	return fmt.Errorf("revoke certificate %s: %w: the href provider hands out certificates it did not issue; revoke it at your CA", serial, errors.ErrUnsupported)
}

// CAChain returns the fleet CA bundle: the one given by WithCABundle, or
// else the one downloaded from WithCABundleURL, or from the CA URL of
// WithURLs when it names no instance, checked to end with a self-signed
// root. With none of them it fails with an error wrapping vault.ErrDenied.
func (i *Issuer) CAChain(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read CA chain: %w", err)
	}
	switch {
	case i.caBundle != nil:
		return bytes.Clone(i.caBundle), nil
	case i.caBundleURL != "":
		u, err := url.Parse(i.caBundleURL)
		if err != nil {
			return nil, fmt.Errorf("read CA chain: %w", err)
		}
		name := "the CA bundle from " + redact(u)
		data, err := i.get(ctx, u, name, false)
		if err != nil {
			return nil, fmt.Errorf("read CA chain: %w", err)
		}
		chain, err := inline.ValidateCAChain(name, data)
		if err != nil {
			return nil, fmt.Errorf("read CA chain: %w", err)
		}
		return chain, nil
	default:
		return nil, fmt.Errorf("read CA chain: %w: the CA URL is per instance and no fleet CA bundle is configured; configure one with WithCABundle or WithCABundleURL", vault.ErrDenied)
	}
}

// CloseIdleConnections closes the connections kept open for later
// downloads.
func (i *Issuer) CloseIdleConnections() {
	i.public.CloseIdleConnections()
	i.private.CloseIdleConnections()
}

// fetch downloads one of an instance's files and returns it with the name
// errors give it.
func (i *Issuer) fetch(ctx context.Context, tmpl, instance, file string, private bool) (data []byte, name string, err error) {
	u, err := url.Parse(strings.ReplaceAll(tmpl, Placeholder, url.PathEscape(instance)))
	if err != nil {
		return nil, instance + "/" + file, fmt.Errorf("download %s/%s: %w", instance, file, err)
	}
	name = instance + "/" + file + " from " + redact(u)
	data, err = i.get(ctx, u, name, private)
	return data, name, err
}

// get downloads u, named name in errors. A private download goes through
// the client that presents the client certificate and carries the token.
func (i *Issuer) get(ctx context.Context, u *url.URL, name string, private bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", name, err)
	}
	client := i.public
	if private {
		client = i.private
		if len(i.token) > 0 {
			req.Header.Set("Authorization", "Bearer "+string(i.token.Bytes()))
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, i.transportError(ctx, name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; what is read
		// goes nowhere, as it may hold a key.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, statusError(name, resp.StatusCode, private)
	}
	if resp.ContentLength > i.maxSize {
		return nil, i.oversize(name)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, i.maxSize+1))
	if err != nil {
		clear(data)
		return nil, i.transportError(ctx, name, err)
	}
	if int64(len(data)) > i.maxSize {
		clear(data)
		return nil, i.oversize(name)
	}
	return data, nil
}

func (i *Issuer) transportError(ctx context.Context, name string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("download %s: %w", name, ctxErr)
	}
	var timeout interface{ Timeout() bool }
	isTimeout := errors.As(err, &timeout) && timeout.Timeout()
	var ue *url.Error
	if errors.As(err, &ue) { // its message repeats the URL, query and all
		err = ue.Err
	}
	var untrusted *tls.CertificateVerificationError
	switch {
	case errors.As(err, &untrusted):
		return fmt.Errorf("download %s: %w: the server's certificate is not trusted: %w; give its CA to WithRootCAs, or fix the server's certificate", name, vault.ErrDenied, err)
	case isTimeout:
		return fmt.Errorf("download %s: no answer within %s: %w", name, i.timeout, err)
	default:
		return fmt.Errorf("download %s: %w", name, err)
	}
}

// statusError describes an answer other than 200 OK by its status alone:
// the body of a key download's answer may hold the key.
func statusError(name string, code int, private bool) error {
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return &inline.FileError{File: name, Problem: "was not found (" + status + ")",
			Fix: "put the file on the server, or fix the URL template (WithURLs)"}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		fix := "let the reconciler read it"
		if private {
			fix = "check the bearer token or client certificate the key download sends (WithBearerToken, WithClientCertificate)"
		}
		return &inline.FileError{File: name, Problem: "was refused (" + status + ")", Fix: fix}
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return &inline.FileError{File: name, Problem: "was refused (" + status + ")", Fix: "check the URL template (WithURLs)"}
	default:
		return fmt.Errorf("download %s: the server answered %s", name, status)
	}
}

func (i *Issuer) oversize(name string) error {
	return &inline.FileError{File: name, Problem: fmt.Sprintf("is over the %d-byte limit", i.maxSize),
		Fix: "check the URL serves the PEM file, or raise the limit with WithMaxSize"}
}

func newClient(roots *x509.CertPool, cert *tls.Certificate, timeout time.Duration) *http.Client {
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConfig,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          10,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		Timeout: timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to %s refused: not https://", redact(req.URL))
			}
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			return nil
		},
	}
}

// redact returns u without user, query or fragment: a presigned URL
// carries its signature in the query.
func redact(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery, r.ForceQuery = "", false
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}
