package git_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/reconciler-dev/reconciler/sources/git"
)

// canary is a secret that must never show in an error or a log line.
const canary = "canary-5ecret-do-not-leak"

// gitBinary returns the path of the real git, which serves the test
// remotes, or skips the test.
func gitBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: the remote tests serve repositories with it")
	}
	return p
}

// gitEnv keeps the git that serves a remote away from the user's and the
// system's configuration.
func gitEnv(t *testing.T) []string {
	return []string{"HOME=" + t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull}
}

// newRemote creates a repository under root/fleet whose default branch is
// trunk, with one commit.
func newRemote(t *testing.T, root string) (*testRepo, plumbing.Hash) {
	t.Helper()
	r := newTestRepo(t, filepath.Join(root, "fleet"), "trunk")
	h := r.commit("first", map[string]string{
		"README.md":                   "top",
		"fleet/instances/orders.yaml": "orders v1",
		"fleet/policies/ssl.rego":     "ssl",
	})
	return r, h
}

// httpGitServer serves the repositories under root over git's smart HTTP
// protocol with the real git http-backend, and requires HTTP basic
// authentication as user and password.
func httpGitServer(t *testing.T, root, user, password string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(gitHandler(t, root, user, password))
	t.Cleanup(srv.Close)
	return srv
}

// gitHandler is the handler of httpGitServer.
func gitHandler(t *testing.T, root, user, password string) http.Handler {
	t.Helper()
	backend := &cgi.Handler{
		Path: gitBinary(t),
		Args: []string{"http-backend"},
		Env:  append(gitEnv(t), "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	})
}

// logBuffer is a slog handler's output, safe to read while it is written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestCloneHTTP(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, first := newRemote(t, root)
	srv := httpGitServer(t, root, "fleet-reader", canary)
	url := srv.URL + "/fleet"
	fleet := map[string]string{"instances/orders.yaml": "orders v1", "policies/ssl.rego": "ssl"}

	tests := []struct {
		name    string
		auth    git.Auth
		wantErr string
	}{
		{"password", git.Auth{Username: "fleet-reader", Password: canary}, ""},
		{"wrong password", git.Auth{Username: "fleet-reader", Password: canary + "-wrong"}, "authentication required"},
		{"wrong user", git.Auth{Username: "intruder", Password: canary}, "authentication required"},
		{"no credentials", git.Auth{}, "authentication required"},
		{"token under the default user name git, which the server does not know", git.Auth{Token: canary}, "authentication required"},
		{"token as the basic-auth password", git.Auth{Username: "fleet-reader", Token: canary}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			src, err := git.Clone(t.Context(), url, git.WithCacheDir(t.TempDir()), git.WithSubdir("fleet"),
				git.WithAuth(tt.auth), git.WithLogger(log))
			if strings.Contains(logs.String(), canary) {
				t.Errorf("logs hold the secret:\n%s", logs.String())
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Clone error = %v, want one containing %q", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				if strings.Contains(err.Error(), canary) {
					t.Errorf("error holds the secret: %v", err)
				}
				if !strings.Contains(err.Error(), url) {
					t.Errorf("error %q does not name the remote %s", err, url)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), url) {
				t.Errorf("logs do not name the remote:\n%s", logs.String())
			}
			snap, err := src.Snapshot(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != first.String() {
				t.Errorf("Revision = %s, want %s", snap.Revision, first)
			}
			if diff := cmp.Diff(fleet, readAll(t, snap.FS)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloneHTTPS(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, first := newRemote(t, root)
	srv := httptest.NewUnstartedServer(gitHandler(t, root, "fleet-reader", canary))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	url := srv.URL + "/fleet"

	src, err := git.Clone(t.Context(), url, git.WithCacheDir(t.TempDir()),
		git.WithAuth(git.Auth{Username: "fleet-reader", Token: canary, CABundle: ca}))
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := src.Snapshot(t.Context(), ""); err != nil || snap.Revision != first.String() {
		t.Errorf("Snapshot = %v, %v; want revision %s", snap, err, first)
	}

	_, err = git.Clone(t.Context(), url, git.WithCacheDir(t.TempDir()),
		git.WithAuth(git.Auth{Username: "fleet-reader", Token: canary}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Clone without the server's CA: error = %v, want a certificate error", err)
	}
	t.Logf("error: %v", err)
	if strings.Contains(err.Error(), canary) {
		t.Errorf("error holds the secret: %v", err)
	}
}

// TestCloneHTTPFetches pushes commits, tags and branch changes to a remote
// after it was cloned and checks that a second Clone and Fetch see them
// without cloning again.
func TestCloneHTTPFetches(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	remote, first := newRemote(t, root)
	remote.branch("feature", first)
	srv := httpGitServer(t, root, "fleet-reader", canary)
	url := srv.URL + "/fleet"
	cache := t.TempDir()
	opts := []git.Option{git.WithCacheDir(cache), git.WithSubdir("fleet"), git.WithAuth(git.Auth{Username: "fleet-reader", Password: canary})}

	src, err := git.Clone(t.Context(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// A file the clone does not know of survives only if the cache is
	// reused rather than cloned again.
	clones, err := filepath.Glob(filepath.Join(cache, "*"))
	if err != nil || len(clones) != 1 {
		t.Fatalf("cache holds %q, %v; want one clone", clones, err)
	}
	marker := filepath.Join(clones[0], "test-marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	second := remote.commit("second", map[string]string{"fleet/instances/orders.yaml": "orders v2"})
	remote.tag("v2", second, true)
	remote.deleteBranch("feature")

	again, err := git.Clone(t.Context(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the cache was not reused: %v", err)
	}
	tests := []struct {
		rev  string
		want plumbing.Hash
	}{
		{"", second},
		{"HEAD", second},
		{"trunk", second},
		{"trunk~1", first},
		{"v2", second},
	}
	for _, tt := range tests {
		snap, err := again.Snapshot(t.Context(), tt.rev)
		if err != nil {
			t.Errorf("Snapshot(%q): %v", tt.rev, err)
			continue
		}
		if snap.Revision != tt.want.String() {
			t.Errorf("Snapshot(%q).Revision = %s, want %s", tt.rev, snap.Revision, tt.want)
		}
	}
	if _, err := again.Snapshot(t.Context(), "feature"); !errors.Is(err, git.ErrUnknownRevision) {
		t.Errorf("Snapshot of a branch deleted on the remote: error = %v, want ErrUnknownRevision", err)
	}
	changed, err := again.Changed(t.Context(), first.String(), "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"instances/orders.yaml"}, changed); diff != "" {
		t.Errorf("Changed (-want +got):\n%s", diff)
	}

	// The first Source learns of new commits by Fetch.
	third := remote.commit("third", map[string]string{"fleet/instances/orders.yaml": "orders v3"})
	if err := src.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != third.String() {
		t.Errorf("after Fetch: Revision = %s, want %s", snap.Revision, third)
	}
	if err := src.Fetch(t.Context()); err != nil {
		t.Errorf("Fetch with nothing new: %v", err)
	}
}

// TestCloneFollowsDefaultBranch checks that HEAD in the cache names the
// remote's default branch, also after the remote changes it.
func TestCloneFollowsDefaultBranch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	remote, first := newRemote(t, root)
	remote.branch("main", first)
	next := remote.commit("trunk moves on", map[string]string{"fleet/instances/orders.yaml": "orders v2"})
	src, err := git.Clone(t.Context(), "file://"+remote.dir, git.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != next.String() {
		t.Errorf("HEAD = %s, want trunk's %s", snap.Revision, next)
	}

	if err := remote.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		t.Fatal(err)
	}
	if err := src.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	if snap, err = src.Snapshot(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if snap.Revision != first.String() {
		t.Errorf("after the remote's default branch changed: HEAD = %s, want main's %s", snap.Revision, first)
	}
}

func TestCloneFile(t *testing.T) {
	t.Parallel()
	gitBinary(t) // go-git's file transport runs git-upload-pack
	root := t.TempDir()
	remote, first := newRemote(t, root)
	remote.tag("v1", first, false)
	second := remote.commit("second", map[string]string{"fleet/policies/ssl.rego": "ssl v2"})

	for _, url := range []string{"file://" + remote.dir, remote.dir} {
		src, err := git.Clone(t.Context(), url, git.WithCacheDir(t.TempDir()), git.WithSubdir("fleet"))
		if err != nil {
			t.Fatalf("Clone(%s): %v", url, err)
		}
		for rev, want := range map[string]plumbing.Hash{"": second, "v1": first, "trunk~1": first, second.String()[:8]: second} {
			snap, err := src.Snapshot(t.Context(), rev)
			if err != nil {
				t.Errorf("Clone(%s).Snapshot(%q): %v", url, rev, err)
				continue
			}
			if snap.Revision != want.String() {
				t.Errorf("Clone(%s).Snapshot(%q).Revision = %s, want %s", url, rev, snap.Revision, want)
			}
		}
		changed, err := src.Changed(t.Context(), "v1", "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"policies/ssl.rego"}, changed); diff != "" {
			t.Errorf("Changed (-want +got):\n%s", diff)
		}
	}
}

// TestCloneRepairsCache damages a cached clone in several ways and checks
// that the next Clone replaces it.
func TestCloneRepairsCache(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	remote, first := newRemote(t, root)
	url := "file://" + remote.dir

	tests := []struct {
		name   string
		damage func(t *testing.T, clone string)
	}{
		{"garbage HEAD", func(t *testing.T, clone string) {
			writeFile(t, filepath.Join(clone, "HEAD"), "garbage")
		}},
		{"garbage config", func(t *testing.T, clone string) {
			writeFile(t, filepath.Join(clone, "config"), "[[[ not a config")
		}},
		{"objects lost", func(t *testing.T, clone string) {
			if err := os.RemoveAll(filepath.Join(clone, "objects")); err != nil {
				t.Fatal(err)
			}
		}},
		{"another remote", func(t *testing.T, clone string) {
			b, err := os.ReadFile(filepath.Join(clone, "config"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(clone, "config"), strings.ReplaceAll(string(b), url, "https://example.com/other.git"))
		}},
		{"a file in place of the clone", func(t *testing.T, clone string) {
			if err := os.RemoveAll(clone); err != nil {
				t.Fatal(err)
			}
			writeFile(t, clone, "not a repository")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			if _, err := git.Clone(t.Context(), url, git.WithCacheDir(cache)); err != nil {
				t.Fatal(err)
			}
			clones, err := filepath.Glob(filepath.Join(cache, "*"))
			if err != nil || len(clones) != 1 {
				t.Fatalf("cache holds %q, %v; want one clone", clones, err)
			}
			tt.damage(t, clones[0])

			var logs logBuffer
			src, err := git.Clone(t.Context(), url, git.WithCacheDir(cache), git.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			snap, err := src.Snapshot(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != first.String() {
				t.Errorf("Revision = %s, want %s", snap.Revision, first)
			}
			if !strings.Contains(logs.String(), "removing unusable repository cache") {
				t.Errorf("the repair was not logged:\n%s", logs.String())
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCloneRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		auth    git.Auth
		opts    []git.Option
		wantErr string
	}{
		{"password in an https URL", "https://reader:" + canary + "@git.example.com/fleet.git", git.Auth{}, nil, "credentials in the URL are not supported"},
		{"token as the user of an https URL", "https://" + canary + "@git.example.com/fleet.git", git.Auth{}, nil, "credentials in the URL are not supported"},
		{"password in an ssh URL", "ssh://git:" + canary + "@git.example.com/fleet.git", git.Auth{}, nil, "credentials in the URL are not supported"},
		{"unparsable URL", "https://reader:" + canary + "@git.example.com:port/fleet", git.Auth{}, nil, "not a repository URL"},
		{"password and token", "https://git.example.com/fleet.git", git.Auth{Password: canary, Token: canary}, nil, "both a password and a token"},
		{"SSH key for https", "https://git.example.com/fleet.git", git.Auth{SSHKeyFile: "/nonexistent/id_ed25519"}, nil, "SSH credentials given for an https URL"},
		{"token for ssh", "ssh://git@git.example.com/fleet.git", git.Auth{Token: canary}, nil, "ssh authenticates with a key"},
		{"token for a local path", "/srv/git/fleet.git", git.Auth{Token: canary}, nil, "credentials given for a file URL"},
		{"missing known_hosts", "git@git.example.com:org/fleet.git", git.Auth{KnownHostsFile: "/nonexistent/known_hosts", SSHKeyFile: "/nonexistent/id"}, nil, "read known_hosts"},
		{"subdirectory leaving the repository", "https://git.example.com/fleet.git", git.Auth{}, []git.Option{git.WithSubdir("../..")}, "not a relative path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]git.Option{git.WithCacheDir(t.TempDir()), git.WithAuth(tt.auth)}, tt.opts...)
			_, err := git.Clone(t.Context(), tt.url, opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Clone error = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
}

// sshGitServer serves the repositories under root over SSH, running the
// real git-upload-pack for each fetch. It accepts only the client key
// authorized and presents hostKey. It returns the server's address.
func sshGitServer(t *testing.T, root string, hostKey ssh.Signer, authorized ssh.PublicKey) string {
	t.Helper()
	gitPath := gitBinary(t)
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unauthorized key")
		},
	}
	config.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveSSH(t, conn, config, root, gitPath) })
		}
	})
	return l.Addr().String()
}

func serveSSH(t *testing.T, conn net.Conn, config *ssh.ServerConfig, root, gitPath string) {
	defer conn.Close()
	sconn, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		return // a refused client or host key
	}
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(t, ch, requests, root, gitPath)
	}
}

// serveSession runs the one git-upload-pack a session asks for.
func serveSession(t *testing.T, ch ssh.Channel, requests <-chan *ssh.Request, root, gitPath string) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		// go-git sends: git-upload-pack '/fleet'
		service, arg, _ := strings.Cut(payload.Command, " ")
		if service != "git-upload-pack" {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command(gitPath, "upload-pack", filepath.Join(root, strings.Trim(arg, "'")))
		cmd.Env = gitEnv(t)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], status)
		ch.SendRequest("exit-status", false, b[:])
		return
	}
}

// newSSHKey returns a fresh ed25519 key.
func newSSHKey(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, signer
}

// keyFile writes key as an OpenSSH private key file, encrypted with
// passphrase unless it is empty, and returns its name.
func keyFile(t *testing.T, key ed25519.PrivateKey, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(key, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	writeFile(t, file, string(pem.EncodeToMemory(block)))
	return file
}

// knownHosts writes a known_hosts file that lists key for the server at
// addr.
func knownHosts(t *testing.T, addr string, key ssh.PublicKey) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, file, knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n")
	return file
}

func TestCloneSSH(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, first := newRemote(t, root)
	_, hostKey := newSSHKey(t)
	_, otherHostKey := newSSHKey(t)
	clientPriv, clientKey := newSSHKey(t)
	clientKeyFile := keyFile(t, clientPriv, "")
	encryptedKeyFile := keyFile(t, clientPriv, canary)
	strangerPriv, _ := newSSHKey(t)
	strangerKeyFile := keyFile(t, strangerPriv, "")
	addr := sshGitServer(t, root, hostKey, clientKey.PublicKey())
	url := "ssh://git@" + addr + "/fleet"

	rightHosts := knownHosts(t, addr, hostKey.PublicKey())
	wrongHosts := knownHosts(t, addr, otherHostKey.PublicKey())
	otherHost := knownHosts(t, "127.0.0.2:22", hostKey.PublicKey())

	tests := []struct {
		name    string
		auth    git.Auth
		wantErr string
	}{
		{"key and known host", git.Auth{SSHKeyFile: clientKeyFile, KnownHostsFile: rightHosts}, ""},
		{"encrypted key", git.Auth{SSHKeyFile: encryptedKeyFile, SSHKeyPassphrase: canary, KnownHostsFile: rightHosts}, ""},
		{"host key mismatch", git.Auth{SSHKeyFile: clientKeyFile, KnownHostsFile: wrongHosts}, "knownhosts: key mismatch"},
		{"host not in known_hosts", git.Auth{SSHKeyFile: clientKeyFile, KnownHostsFile: otherHost}, "knownhosts: key is unknown"},
		{"known_hosts missing", git.Auth{SSHKeyFile: clientKeyFile, KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts")}, "read known_hosts"},
		{"wrong passphrase", git.Auth{SSHKeyFile: encryptedKeyFile, SSHKeyPassphrase: canary + "-wrong", KnownHostsFile: rightHosts}, "read SSH key"},
		{"key the server does not know", git.Auth{SSHKeyFile: strangerKeyFile, KnownHostsFile: rightHosts}, "unable to authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, err := git.Clone(t.Context(), url, git.WithCacheDir(t.TempDir()), git.WithSubdir("fleet"), git.WithAuth(tt.auth))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Clone error = %v, want one containing %q", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				if strings.Contains(err.Error(), canary) {
					t.Errorf("error holds the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			snap, err := src.Snapshot(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != first.String() {
				t.Errorf("Revision = %s, want %s", snap.Revision, first)
			}
			want := map[string]string{"instances/orders.yaml": "orders v1", "policies/ssl.rego": "ssl"}
			if diff := cmp.Diff(want, readAll(t, snap.FS)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloneSSHWithoutKeyNeedsAgent(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	_, hostKey := newSSHKey(t)
	hosts := knownHosts(t, "127.0.0.1:22", hostKey.PublicKey())
	_, err := git.Clone(t.Context(), "ssh://git@127.0.0.1/fleet", git.WithCacheDir(t.TempDir()), git.WithAuth(git.Auth{KnownHostsFile: hosts}))
	if err == nil || !strings.Contains(err.Error(), "ssh-agent") {
		t.Errorf("Clone without key or agent: error = %v, want one naming ssh-agent", err)
	}
}

// TestConcurrentReadersOfClone repeats TestConcurrentReaders on a clone,
// whose objects are in pack files, while the Source fetches.
func TestConcurrentReadersOfClone(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	remote, _ := newRemote(t, root)
	files := map[string]string{}
	for i := range 40 {
		files["fleet/instances/"+string(rune('a'+i%26))+string(rune('a'+i/26))+".yaml"] = strings.Repeat("x", i*100)
	}
	remote.commit("many", files)
	src, err := git.Clone(t.Context(), "file://"+remote.dir, git.WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, snap.FS)

	remote.commit("more", map[string]string{"fleet/instances/new.yaml": "new"})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if diff := cmp.Diff(want, readAll(t, snap.FS)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
		if i%4 == 0 {
			wg.Go(func() {
				if err := src.Fetch(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if _, err := src.Changed(t.Context(), "HEAD~1", "HEAD"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestAuthPrintsNoSecret(t *testing.T) {
	t.Parallel()
	auth := git.Auth{Username: "reader", Password: canary, Token: canary, SSHKeyPassphrase: canary}
	var logs logBuffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("configured", "auth", auth)
	for _, s := range []string{fmt.Sprint(auth), fmt.Sprintf("%+v", auth), fmt.Sprintf("%#v", auth), logs.String()} {
		if strings.Contains(s, canary) {
			t.Errorf("printed Auth holds the secret: %s", s)
		}
		if !strings.Contains(s, "reader") {
			t.Errorf("printed Auth lost the user name: %s", s)
		}
	}
}
