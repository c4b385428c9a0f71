package git_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/sources/git"
	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/sources/signature/signaturetest"
)

// history is a repository whose branches hold signed and unsigned
// commits in the shapes the verification tests need:
//
//	main:      a1(S) a2(U) a3(S) a4(S)
//	gpg:       a4 - g1(G) g2(G) g3(G)
//	merge-bad: a4 - m(S), merging topic-bad: a4 - u(U)
//	merge-old: a4 - n(S), merging topic-old: a1 - o1(S)
//	rewritten: a3 - r1(S)
//
// S is signed by alice's SSH key, G by carol's GPG key, U unsigned.
type history struct {
	repo    *signaturetest.Repo
	commits map[string]string // name -> hash
	names   map[string]string // hash -> name
	alice   *signaturetest.SSHKey
	carol   *signaturetest.GPGKey
	cfg     signature.Config
}

func newHistory(t *testing.T) *history {
	t.Helper()
	signaturetest.NeedTools(t, "git", "ssh-keygen", "gpg", "gpgconf")
	h := &history{commits: map[string]string{}, names: map[string]string{}}
	h.alice = signaturetest.NewSSHKey(t, "alice")
	gpg := signaturetest.NewGPG(t, time.Time{})
	h.carol = gpg.NewKey(t, "Carol <carol@example.com>", "never")
	keys := t.TempDir()
	h.cfg = signature.Config{
		AllowedSigners: filepath.Join(keys, "allowed_signers"),
		GPGKeyring:     gpg.Export(t, filepath.Join(keys, "keyring.asc"), true),
	}
	if err := os.WriteFile(h.cfg.AllowedSigners, []byte(h.alice.AllowedSigner("alice@example.com", `namespaces="git"`)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := signaturetest.NewRepo(t)
	h.repo = r
	S := signaturetest.Identity{Name: "Alice", Email: "alice@example.com", Key: h.alice}
	G := signaturetest.Identity{Name: "Carol", Email: "carol@example.com", Key: h.carol}
	U := signaturetest.Identity{Name: "Alice", Email: "alice@example.com"}
	add := func(name, hash string) {
		h.commits[name] = hash
		h.names[hash] = name
	}
	for _, c := range []struct {
		name string
		who  signaturetest.Identity
	}{{"a1", S}, {"a2", U}, {"a3", S}, {"a4", S}} {
		add(c.name, r.Commit(c.who, c.name))
	}
	r.Git("checkout", "-q", "-b", "gpg", h.commits["a4"])
	for _, name := range []string{"g1", "g2", "g3"} {
		add(name, r.Commit(G, name))
	}
	r.Git("checkout", "-q", "-b", "topic-bad", h.commits["a4"])
	add("u", r.Commit(U, "u"))
	r.Git("checkout", "-q", "-b", "merge-bad", h.commits["a4"])
	add("m", r.Commit(S, "m"))
	add("merge-bad", r.Merge(S, "topic-bad", "merge topic-bad"))
	r.Git("checkout", "-q", "-b", "topic-old", h.commits["a1"])
	add("o1", r.Commit(S, "o1"))
	r.Git("checkout", "-q", "-b", "merge-old", h.commits["a4"])
	add("n", r.Commit(S, "n"))
	add("merge-old", r.Merge(S, "topic-old", "merge topic-old"))
	r.Git("checkout", "-q", "-b", "rewritten", h.commits["a3"])
	add("r1", r.Commit(S, "r1"))
	r.Git("checkout", "-q", "main")
	return h
}

// rev returns the hash of a commit name, or name itself if it is none.
func (h *history) rev(name string) string {
	if hash, ok := h.commits[name]; ok {
		return hash
	}
	return name
}

// signer returns who signed the commit name, as Verify reports it.
func (h *history) signer(name string) signature.Signer {
	if strings.HasPrefix(name, "g") {
		return signature.Signer{Commit: h.commits[name], Format: signature.FormatOpenPGP, Fingerprint: h.carol.Fingerprint, Principal: "Carol <carol@example.com>", TrustedBy: h.cfg.GPGKeyring}
	}
	return signature.Signer{Commit: h.commits[name], Format: signature.FormatSSH, Fingerprint: h.alice.Fingerprint, Principal: "alice@example.com", TrustedBy: h.cfg.AllowedSigners + ":1"}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	h := newHistory(t)
	v, err := signature.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := git.Open(ctx, h.repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	short := func(name string) string { return h.rev(name)[:7] }
	tests := []struct {
		name     string
		mode     signature.Mode
		from, to string
		signed   []string // the commits the report lists
		refused  string   // the commit named by the error
		reasons  []error  // what the error wraps
		wantErr  string   // the whole error message
	}{
		{
			name:   "head mode ignores an unsigned older commit",
			mode:   signature.ModeHead,
			from:   "a1",
			to:     "main",
			signed: []string{"a4"},
		},
		{
			name:    "strict mode refuses an unsigned commit in the middle",
			mode:    signature.ModeStrict,
			from:    "a1",
			to:      "main",
			refused: "a2",
			reasons: []error{signature.ErrNotSigned},
			wantErr: "verify main (3 commits since " + short("a1") + "): commit " + short("a2") + ": not signed: sign it with git commit -S using a key in allowed_signers " + h.cfg.AllowedSigners + " or in GPG keyring " + h.cfg.GPGKeyring,
		},
		{
			name:   "strict mode checks every commit since the last, oldest first",
			mode:   signature.ModeStrict,
			from:   "a2",
			to:     "main",
			signed: []string{"a3", "a4"},
		},
		{
			name:   "strict mode over gpg signatures",
			mode:   signature.ModeStrict,
			from:   "a4",
			to:     "gpg",
			signed: []string{"g1", "g2", "g3"},
		},
		{
			name:    "strict mode refuses a merge whose second parent is unsigned",
			mode:    signature.ModeStrict,
			from:    "a4",
			to:      "merge-bad",
			refused: "u",
			reasons: []error{signature.ErrNotSigned},
		},
		{
			name:   "head mode takes the signed merge alone",
			mode:   signature.ModeHead,
			from:   "a4",
			to:     "merge-bad",
			signed: []string{"merge-bad"},
		},
		{
			name:   "strict mode checks a merged old branch's new commits only",
			mode:   signature.ModeStrict,
			from:   "a4",
			to:     "merge-old",
			signed: []string{"n", "o1", "merge-old"},
		},
		{
			name:   "strict mode without a last revision checks the head",
			mode:   signature.ModeStrict,
			to:     "main",
			signed: []string{"a4"},
		},
		{
			name:   "strict mode on the last revision itself checks it again",
			mode:   signature.ModeStrict,
			from:   "a4",
			to:     "a4",
			signed: []string{"a4"},
		},
		{
			name:    "head mode refuses an unsigned head",
			mode:    signature.ModeHead,
			from:    "a1",
			to:      "a2",
			refused: "a2",
			reasons: []error{signature.ErrNotSigned},
		},
		{
			name: "mode off checks no signature",
			mode: signature.ModeOff,
			from: "a1",
			to:   "main",
		},
		{
			name:    "rewritten history, strict mode",
			mode:    signature.ModeStrict,
			from:    "a4",
			to:      "rewritten",
			reasons: []error{git.ErrRewritten},
			wantErr: "verify rewritten: history rewritten: " + short("a4") + ", the last revision applied, is not an ancestor of " + short("r1") + ": the branch was reset or force-pushed",
		},
		{
			name:    "rewritten history, head mode",
			mode:    signature.ModeHead,
			from:    "a4",
			to:      "rewritten",
			reasons: []error{git.ErrRewritten},
		},
		{
			name:    "rewritten history, mode off",
			mode:    signature.ModeOff,
			from:    "a4",
			to:      "rewritten",
			reasons: []error{git.ErrRewritten},
		},
		{
			name:    "a branch reset to an older commit is rewritten",
			mode:    signature.ModeOff,
			from:    "a4",
			to:      "a3",
			reasons: []error{git.ErrRewritten},
		},
		{
			name:    "a last revision no longer in the repository is rewritten",
			mode:    signature.ModeHead,
			from:    "0123456789abcdef0123456789abcdef01234567",
			to:      "main",
			reasons: []error{git.ErrRewritten, git.ErrUnknownRevision},
		},
		{
			name:    "an unknown revision to apply",
			mode:    signature.ModeHead,
			to:      "no-such-branch",
			reasons: []error{git.ErrUnknownRevision},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := src.Verify(ctx, v, tt.mode, h.rev(tt.from), h.rev(tt.to))
			if tt.reasons == nil {
				if err != nil {
					t.Fatalf("Verify() error = %v", err)
				}
				want := &signature.Report{Mode: tt.mode, To: h.repo.Git("rev-parse", h.rev(tt.to))}
				if tt.from != "" {
					want.From = h.rev(tt.from)
				}
				for _, name := range tt.signed {
					want.Signers = append(want.Signers, h.signer(name))
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Verify() (-want +got):\n%s", diff)
				}
				return
			}
			if got != nil || err == nil {
				t.Fatalf("Verify() = %+v, %v; want an error", got, err)
			}
			for _, reason := range tt.reasons {
				if !errors.Is(err, reason) {
					t.Errorf("Verify() error = %v, want one wrapping %v", err, reason)
				}
			}
			var refused *signature.Error
			switch {
			case tt.refused != "" && !errors.As(err, &refused):
				t.Errorf("Verify() error = %v, want a *signature.Error", err)
			case tt.refused != "" && h.names[refused.Commit] != tt.refused:
				t.Errorf("Verify() refused commit %s (%s), want %s", h.names[refused.Commit], refused.Commit, tt.refused)
			case tt.refused == "" && errors.As(err, &refused):
				t.Errorf("Verify() error = %v, want no *signature.Error", err)
			}
			if tt.wantErr != "" {
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("Verify() error (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestVerifyArguments(t *testing.T) {
	ctx := context.Background()
	src := openHistoryRepo(t)
	if _, err := src.Verify(ctx, nil, signature.ModeHead, "", "main"); err == nil || !strings.Contains(err.Error(), "needs a signature.Verifier") {
		t.Errorf("Verify(nil verifier) error = %v", err)
	}
	if _, err := src.Verify(ctx, nil, signature.Mode("all"), "", "main"); err == nil || !strings.Contains(err.Error(), `unknown verification mode "all"`) {
		t.Errorf("Verify(mode all) error = %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.Verify(canceled, nil, signature.ModeOff, "", "main"); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify(canceled) error = %v, want context.Canceled", err)
	}
	if _, err := src.IsAncestor(canceled, "main~1", "main"); !errors.Is(err, context.Canceled) {
		t.Errorf("IsAncestor(canceled) error = %v, want context.Canceled", err)
	}
}

// openHistoryRepo opens a repository of two unsigned commits on main.
func openHistoryRepo(t *testing.T) *git.Source {
	t.Helper()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("one", map[string]string{"a": "1"})
	r.commit("two", map[string]string{"a": "2"})
	src, err := git.Open(context.Background(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestIsAncestor(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t, t.TempDir(), "main")
	one := r.commit("one", map[string]string{"a": "1"})
	two := r.commit("two", map[string]string{"a": "2"})
	src, err := git.Open(ctx, r.dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from, to string
		want     bool
	}{
		{one.String(), two.String(), true},
		{two.String(), two.String(), true},
		{"HEAD~1", "main", true},
		{two.String(), one.String(), false},
	}
	for _, tt := range tests {
		got, err := src.IsAncestor(ctx, tt.from, tt.to)
		if err != nil || got != tt.want {
			t.Errorf("IsAncestor(%s, %s) = %v, %v; want %v", tt.from, tt.to, got, err, tt.want)
		}
	}
	if _, err := src.IsAncestor(ctx, "nope", "main"); !errors.Is(err, git.ErrUnknownRevision) {
		t.Errorf("IsAncestor(nope) error = %v, want ErrUnknownRevision", err)
	}
}

// TestVerifyClone verifies through a bare clone, whose commits are read
// from pack files rather than loose objects, and with a fleet subdirectory,
// which does not narrow what is verified.
func TestVerifyClone(t *testing.T) {
	ctx := context.Background()
	h := newHistory(t)
	v, err := signature.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := git.Clone(ctx, "file://"+h.repo.Dir, git.WithCacheDir(t.TempDir()), git.WithSubdir("fleet"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Verify(ctx, v, signature.ModeStrict, h.commits["a4"], "gpg")
	if err != nil {
		t.Fatal(err)
	}
	want := &signature.Report{Mode: signature.ModeStrict, From: h.commits["a4"], To: h.commits["g3"], Signers: []signature.Signer{h.signer("g1"), h.signer("g2"), h.signer("g3")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Verify() (-want +got):\n%s", diff)
	}
	if _, err := src.Verify(ctx, v, signature.ModeStrict, h.commits["a1"], "main"); !errors.Is(err, signature.ErrNotSigned) {
		t.Errorf("Verify(a1..main) error = %v, want ErrNotSigned", err)
	}
}
