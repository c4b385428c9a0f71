// Package signaturetest makes signed commits with the real tools, for the
// tests of commit verification: ssh-keygen for SSH keys, gpg for OpenPGP
// keys and git to sign. Everything lives in temporary directories, with
// the user's and the system's git and GnuPG configuration kept out.
//
// Tests that use it are skipped, saying what is missing, when a tool is
// not installed.
package signaturetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NeedTools skips tb unless every named program is on PATH.
func NeedTools(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			tb.Skipf("%s is not installed: these tests sign commits with the real tools", n)
		}
	}
}

// run runs name with args in dir, with env added to a clean environment,
// and returns its standard output, trimmed.
func run(tb testing.TB, dir string, env []string, stdin []byte, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(stdout.String())
}

// baseEnv is the environment without what would let the user's git or
// GnuPG setup in.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") || k == "GNUPGHOME" || k == "HOME" || k == "SSH_AUTH_SOCK" || k == "LANG" || strings.HasPrefix(k, "LC_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
}

// Key signs commits: an *SSHKey or a *GPGKey.
type Key interface {
	// gitArgs are the git -c options that make git sign with the key.
	gitArgs() []string
	// env is the environment the signing program needs.
	env() []string
}

// SSHKey is an ed25519 key pair made by ssh-keygen.
type SSHKey struct {
	// Path is the private key's file; Path+".pub" is the public key's.
	Path string
	// PublicKey is the public key as in a .pub file: "ssh-ed25519 AAAA...
	// comment".
	PublicKey string
	// Fingerprint is the key's SHA256 fingerprint, "SHA256:...".
	Fingerprint string
}

// NewSSHKey makes an ed25519 key without a passphrase.
func NewSSHKey(tb testing.TB, comment string) *SSHKey {
	tb.Helper()
	NeedTools(tb, "ssh-keygen")
	path := filepath.Join(tb.TempDir(), "id_ed25519")
	run(tb, "", nil, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		tb.Fatal(err)
	}
	fp := run(tb, "", nil, nil, "ssh-keygen", "-l", "-E", "sha256", "-f", path+".pub")
	fields := strings.Fields(fp)
	if len(fields) < 2 {
		tb.Fatalf("ssh-keygen -l printed %q", fp)
	}
	return &SSHKey{Path: path, PublicKey: strings.TrimSpace(string(pub)), Fingerprint: fields[1]}
}

// Sign signs data with ssh-keygen -Y sign in namespace ns and returns the
// armored signature.
func (k *SSHKey) Sign(tb testing.TB, data []byte, ns string) string {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "data")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	run(tb, "", nil, nil, "ssh-keygen", "-Y", "sign", "-q", "-n", ns, "-f", k.Path, file)
	sig, err := os.ReadFile(file + ".sig")
	if err != nil {
		tb.Fatal(err)
	}
	return string(sig)
}

// AllowedSigner returns an allowed_signers line for the key: principals,
// then options if any, then the key.
func (k *SSHKey) AllowedSigner(principals, options string) string {
	if options == "" {
		return principals + " " + k.PublicKey
	}
	return principals + " " + options + " " + k.PublicKey
}

func (k *SSHKey) gitArgs() []string {
	return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + k.Path}
}

func (k *SSHKey) env() []string { return nil }

// GPG is a GnuPG home directory.
type GPG struct {
	// Home is the directory, GNUPGHOME.
	Home string
	// program is gpg, or a script running it with a faked clock.
	program string
}

// NewGPG makes an empty GnuPG home. If at is not zero, gpg runs as if the
// time were at, for making keys and signing alike: keys made to expire a
// day after at are expired when the test verifies. The gpg-agent it
// starts is stopped when the test ends.
func NewGPG(tb testing.TB, at time.Time) *GPG {
	tb.Helper()
	NeedTools(tb, "gpg", "gpgconf")
	// The agent's socket lives in the home, whose path must stay short.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	g := &GPG{Home: home, program: "gpg"}
	tb.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(baseEnv(), "GNUPGHOME="+home)
		_ = cmd.Run()
		os.RemoveAll(home)
	})
	if !at.IsZero() {
		g.program = filepath.Join(home, "gpg-at")
		script := fmt.Sprintf("#!/bin/sh\nexec gpg --faked-system-time '%s!' \"$@\"\n", at.UTC().Format("20060102T150405"))
		if err := os.WriteFile(g.program, []byte(script), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	return g
}

func (g *GPG) gpg(tb testing.TB, stdin []byte, args ...string) string {
	tb.Helper()
	return run(tb, "", []string{"GNUPGHOME=" + g.Home}, stdin, g.program, append([]string{"--batch", "--no-tty", "--quiet"}, args...)...)
}

// GPGKey is an OpenPGP key in a GPG home.
type GPGKey struct {
	// Fingerprint is the primary key's fingerprint, upper-case hex.
	Fingerprint string
	// UID is the user ID, "Name <email>".
	UID string
	gpg *GPG
}

// NewKey makes an ed25519 signing key without a passphrase for uid, such
// as "Alice <alice@example.com>". expire is as gpg --quick-gen-key takes
// it: "never", "1d", "2y".
func (g *GPG) NewKey(tb testing.TB, uid, expire string) *GPGKey {
	tb.Helper()
	g.gpg(tb, nil, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
	out := g.gpg(tb, nil, "--with-colons", "--list-keys", "="+uid)
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			return &GPGKey{Fingerprint: f[9], UID: uid, gpg: g}
		}
	}
	tb.Fatalf("no fingerprint for %s in:\n%s", uid, out)
	return nil
}

// Revoke revokes the key with the revocation certificate gpg made with it.
func (k *GPGKey) Revoke(tb testing.TB) {
	tb.Helper()
	cert, err := os.ReadFile(filepath.Join(k.gpg.Home, "openpgp-revocs.d", k.Fingerprint+".rev"))
	if err != nil {
		tb.Fatal(err)
	}
	// gpg guards the certificate with a colon before its armor.
	cert = bytes.Replace(cert, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1)
	k.gpg.gpg(tb, cert, "--import")
}

// Export writes the public keys of the home to file, armored or binary,
// and returns file.
func (g *GPG) Export(tb testing.TB, file string, armored bool) string {
	tb.Helper()
	return g.export(tb, file, armored, "--export")
}

// ExportSecret writes the private keys of the home to file, as a user
// might by mistake, and returns file.
func (g *GPG) ExportSecret(tb testing.TB, file string, armored bool) string {
	tb.Helper()
	return g.export(tb, file, armored, "--export-secret-keys")
}

func (g *GPG) export(tb testing.TB, file string, armored bool, command string) string {
	tb.Helper()
	args := []string{command}
	if armored {
		args = append(args, "--armor")
	}
	cmd := exec.Command(g.program, append([]string{"--batch", "--quiet"}, args...)...)
	cmd.Env = append(baseEnv(), "GNUPGHOME="+g.Home)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("gpg %s: %v", command, err)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		tb.Fatal(err)
	}
	return file
}

func (k *GPGKey) gitArgs() []string {
	return []string{"-c", "gpg.format=openpgp", "-c", "gpg.program=" + k.gpg.program, "-c", "user.signingkey=" + k.Fingerprint}
}

func (k *GPGKey) env() []string { return []string{"GNUPGHOME=" + k.gpg.Home} }

// Identity is who makes a commit, and with which key, if any, they sign.
type Identity struct {
	Name, Email string
	// Key signs the commit; nil leaves it unsigned.
	Key Key
	// When is the author and committer time; zero takes the repository's
	// clock, which starts on 2025-01-01 and moves a minute per commit.
	When time.Time
}

// Repo is a repository with a working tree, on branch main.
type Repo struct {
	// Dir is the working tree.
	Dir   string
	tb    testing.TB
	clock time.Time
	files int
}

// NewRepo makes an empty repository.
func NewRepo(tb testing.TB) *Repo {
	tb.Helper()
	NeedTools(tb, "git")
	r := &Repo{Dir: tb.TempDir(), tb: tb, clock: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.Git("init", "-q", "-b", "main")
	return r
}

// Git runs git in the repository and returns its output, trimmed.
func (r *Repo) Git(args ...string) string {
	r.tb.Helper()
	return run(r.tb, r.Dir, []string{"HOME=" + r.Dir}, nil, "git", args...)
}

// TryGit runs git in the repository and returns its output, trimmed, and
// the error if it fails: for commands whose failure is an answer, such as
// git verify-commit.
func (r *Repo) TryGit(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(baseEnv(), "HOME="+r.Dir)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// as runs git as who, signing if who has a key.
func (r *Repo) as(who Identity, args ...string) string {
	r.tb.Helper()
	when := who.When
	if when.IsZero() {
		r.clock = r.clock.Add(time.Minute)
		when = r.clock
	}
	stamp := when.Format(time.RFC3339)
	env := []string{"HOME=" + r.Dir, "GIT_AUTHOR_DATE=" + stamp, "GIT_COMMITTER_DATE=" + stamp}
	cfg := []string{"-c", "user.name=" + who.Name, "-c", "user.email=" + who.Email, "-c", "commit.gpgSign=false"}
	if who.Key != nil {
		env = append(env, who.Key.env()...)
		cfg = append(cfg, who.Key.gitArgs()...)
	}
	return run(r.tb, r.Dir, env, nil, "git", append(cfg, args...)...)
}

// Commit adds a file holding msg, commits it as who with message msg and
// returns the new commit's hash. Each commit adds a file of its own, so
// branches merge without conflicts.
func (r *Repo) Commit(who Identity, msg string) string {
	r.tb.Helper()
	r.files++
	name := fmt.Sprintf("file%04d", r.files)
	if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(msg+"\n"), 0o644); err != nil {
		r.tb.Fatal(err)
	}
	r.Git("add", name)
	args := []string{"commit", "-q", "-m", msg}
	if who.Key != nil {
		args = append(args, "-S")
	}
	r.as(who, args...)
	return r.Git("rev-parse", "HEAD")
}

// Merge merges branch into the current branch with a merge commit made as
// who, and returns its hash.
func (r *Repo) Merge(who Identity, branch, msg string) string {
	r.tb.Helper()
	args := []string{"merge", "-q", "--no-ff", "-m", msg}
	if who.Key != nil {
		args = append(args, "-S")
	}
	r.as(who, append(args, branch)...)
	return r.Git("rev-parse", "HEAD")
}
