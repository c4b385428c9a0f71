package git

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Option configures Open and Clone.
type Option func(*options)

type options struct {
	subdir   string
	cacheDir string
	auth     Auth
	log      *slog.Logger
}

// WithSubdir roots snapshots and change lists at dir, a slash-separated
// path relative to the repository root (or, for Open, to the directory
// given). Use it when the fleet is kept in a subdirectory of a larger
// repository.
func WithSubdir(dir string) Option {
	return func(o *options) { o.subdir = dir }
}

// WithCacheDir sets the directory under which Clone keeps its bare clones,
// one subdirectory per repository URL named by the URL's SHA-256. The
// default is reconciler/git under os.UserCacheDir ($XDG_CACHE_HOME or
// ~/.cache). Open ignores it.
func WithCacheDir(dir string) Option {
	return func(o *options) { o.cacheDir = dir }
}

// WithAuth sets the credentials Clone and Fetch present to the remote. Open
// ignores it.
func WithAuth(a Auth) Option {
	return func(o *options) { o.auth = a }
}

// WithLogger sets the logger for clones, fetches and cache repairs. A nil
// logger, the default, discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// Auth holds the credentials for a remote repository. Which fields apply
// depends on the URL's scheme; setting one that does not apply is an error,
// so a misplaced credential is noticed rather than silently unused.
//
// Secrets (Password, Token, SSHKeyPassphrase) never appear in errors or
// logs.
type Auth struct {
	// Username and Password are HTTP basic credentials for http(s) URLs.
	// For ssh URLs Username is the login name when the URL has none
	// (default "git").
	Username string
	Password string
	// Token is an access token for http(s) URLs, sent as the basic-auth
	// password as GitHub, GitLab, Gitea and Bitbucket expect, with Username
	// (default "git") as the user name.
	Token string

	// SSHKeyFile is the private key for ssh URLs, in OpenSSH or PEM form,
	// decrypted with SSHKeyPassphrase if it is encrypted. Without it the
	// keys of the running ssh-agent are offered.
	SSHKeyFile       string
	SSHKeyPassphrase string
	// KnownHostsFile lists the host keys ssh remotes are checked against.
	// Without it $SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts are read. Host keys are always checked:
	// no known_hosts file at all is an error.
	KnownHostsFile string

	// CABundle is PEM certificates trusted for https URLs, in addition to
	// the system's.
	CABundle []byte
}

// String describes a with its secrets masked, so that printing or logging
// an Auth by mistake leaks nothing.
func (a Auth) String() string {
	mask := func(v string) string {
		if v == "" {
			return ""
		}
		return "[redacted]"
	}
	return fmt.Sprintf("{Username:%s Password:%s Token:%s SSHKeyFile:%s SSHKeyPassphrase:%s KnownHostsFile:%s CABundle:%d bytes}",
		a.Username, mask(a.Password), mask(a.Token), a.SSHKeyFile, mask(a.SSHKeyPassphrase), a.KnownHostsFile, len(a.CABundle))
}

// LogValue logs a as String describes it.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// GoString is String, for the %#v verb.
func (a Auth) GoString() string { return a.String() }

// secrets lists the values that must not leak into an error message.
func (a Auth) secrets() []string {
	var s []string
	for _, v := range []string{a.Password, a.Token, a.SSHKeyPassphrase} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// method returns the go-git credentials for the remote at ep.
func (a Auth) method(ep *transport.Endpoint) (transport.AuthMethod, error) {
	switch ep.Protocol {
	case "http", "https":
		if a.SSHKeyFile != "" || a.SSHKeyPassphrase != "" || a.KnownHostsFile != "" {
			return nil, fmt.Errorf("SSH credentials given for an %s URL", ep.Protocol)
		}
		switch {
		case a.Token != "" && a.Password != "":
			return nil, errors.New("both a password and a token given: set one")
		case a.Token != "":
			return &githttp.BasicAuth{Username: cmp.Or(a.Username, "git"), Password: a.Token}, nil
		case a.Username != "" || a.Password != "":
			return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		if a.Password != "" || a.Token != "" {
			return nil, errors.New("a password or token given for an ssh URL: ssh authenticates with a key")
		}
		if len(a.CABundle) > 0 {
			return nil, errors.New("a CA bundle given for an ssh URL: ssh checks host keys with KnownHostsFile")
		}
		return a.sshMethod(ep)
	default:
		if a.Username+a.Password+a.Token+a.SSHKeyFile+a.SSHKeyPassphrase+a.KnownHostsFile != "" || len(a.CABundle) > 0 {
			return nil, fmt.Errorf("credentials given for a %s URL, which takes none", ep.Protocol)
		}
		return nil, nil
	}
}

func (a Auth) sshMethod(ep *transport.Endpoint) (transport.AuthMethod, error) {
	var files []string // empty: go-git's defaults
	if a.KnownHostsFile != "" {
		if _, err := os.Stat(a.KnownHostsFile); err != nil {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
		files = []string{a.KnownHostsFile}
	}
	hosts, err := gitssh.NewKnownHostsDb(files...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	port := ep.Port
	if port == 0 {
		port = gitssh.DefaultPort
	}
	// Offering only the algorithms known_hosts has a key for makes the
	// server present that key, not another one it also holds.
	check := gitssh.HostKeyCallbackHelper{
		HostKeyCallback:   hosts.HostKeyCallback(),
		HostKeyAlgorithms: hosts.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port))),
	}

	user := cmp.Or(ep.User, a.Username, "git")
	if a.SSHKeyFile == "" {
		agent, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, fmt.Errorf("use ssh-agent (no SSHKeyFile given): %w", err)
		}
		agent.HostKeyCallbackHelper = check
		return agent, nil
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase)
	if err != nil {
		return nil, fmt.Errorf("read SSH key %s: %w", a.SSHKeyFile, err)
	}
	keys.HostKeyCallbackHelper = check
	return keys, nil
}

// cleanSubdir checks that dir names a directory inside the repository and
// returns it slash-separated and clean, "" for the root.
func cleanSubdir(dir string) (string, error) {
	p := path.Clean(filepath.ToSlash(dir))
	if p == "." {
		return "", nil
	}
	if !fs.ValidPath(p) {
		return "", fmt.Errorf("subdirectory %q is not a relative path inside the repository", dir)
	}
	return p, nil
}

// redactedError hides secrets in the message of an error it wraps, which
// stays reachable for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every secret in its message replaced. go-git and
// the transports below it do not put credentials in their errors today;
// this guards against one that starts to.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, "[redacted]")
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}
