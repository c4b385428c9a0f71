package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// apiFlags reach a running reconciler's API. The token comes from a file
// or the environment, never a flag (flags show in ps).
type apiFlags struct {
	server    string
	tokenFile string
	caFile    string
}

func (a *apiFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&a.server, "server", os.Getenv("RECONCILER_SERVER"), "the reconciler's API, https://host:port (default $RECONCILER_SERVER)")
	fl.StringVar(&a.tokenFile, "token-file", os.Getenv("RECONCILER_TOKEN_FILE"), "file holding an API token (default $RECONCILER_TOKEN_FILE, else $RECONCILER_TOKEN)")
	fl.StringVar(&a.caFile, "ca-file", os.Getenv("RECONCILER_CA_FILE"), "PEM CA that verifies the API (the daemon's reconciler-ca.pem; default $RECONCILER_CA_FILE)")
}

// apiClient calls the API with a bearer token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func (a apiFlags) client() (*apiClient, error) {
	if a.server == "" {
		return nil, errors.New("no reconciler to ask: set --server https://host:port or RECONCILER_SERVER")
	}
	if !strings.HasPrefix(a.server, "https://") {
		return nil, fmt.Errorf("--server %q: the API is served over https only", a.server)
	}
	token := os.Getenv("RECONCILER_TOKEN")
	if a.tokenFile != "" {
		data, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --token-file: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	if token == "" {
		return nil, errors.New("no API token: set --token-file or RECONCILER_TOKEN")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.caFile != "" {
		pem, err := os.ReadFile(a.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", a.caFile)
		}
	}
	return &apiClient{base: strings.TrimSuffix(a.server, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}}, nil
}

// call sends a request and decodes a 2xx JSON answer into out; any other
// status is an error carrying the API's own message.
func (c *apiClient) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("call %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("call %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (%d)", method, path, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(out); err != nil {
		return fmt.Errorf("read answer of %s: %w", path, err)
	}
	return nil
}
