package webhook

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strings"
)

// The providers, as Push.Provider and WithProviders name them.
const (
	GitHub = "github"
	GitLab = "gitlab"
	Gitea  = "gitea"
)

var providers = []string{GitHub, GitLab, Gitea}

// Push is one verified push: the fleet repository's ref moved from Before
// to After. It is a hint to fetch, nothing more: the reconciler fetches
// the ref and applies what it finds, not what the push says.
type Push struct {
	// Provider is GitHub, GitLab or Gitea.
	Provider string
	// Delivery is the provider's ID of this delivery, the replay cache's
	// key.
	Delivery string
	// Repository names the pushed repository as the payload does.
	Repository Repository
	// Ref is the full name of the ref pushed to: "refs/heads/main".
	Ref string
	// Before and After are the ref's commits before and after the push,
	// full lowercase hashes. Before is all zeros for a new ref, After all
	// zeros for a deleted one.
	Before, After string
	// Changed lists the paths, relative to the repository root, that the
	// payload's commits added, modified or removed: deduplicated, sorted,
	// nil if there are none. It is the union over the listed commits, not
	// a diff of Before and After; see Truncated.
	Changed []string
	// Truncated says Changed may miss paths: the payload says it lists
	// fewer commits than were pushed, lists none for a ref that moved,
	// lacks a commit's file lists, holds a path that is not a clean
	// relative path (dropped), or is a forced push, whose dropped commits
	// no list shows. A consumer that trusts Changed diffs Before and After
	// itself when Truncated is set, and whenever Before is not the commit
	// it last applied.
	Truncated bool
}

// Repository is what a payload says of the pushed repository. A field the
// payload leaves out is "".
type Repository struct {
	// FullName is the owner and name: "platform/fleet", or a GitLab
	// project's path with its namespace.
	FullName string
	// HTTPURL and SSHURL are the clone URLs.
	HTTPURL string
	SSHURL  string
}

// Parse reads one delivery's headers and body as a push from provider
// (GitHub, GitLab or Gitea). It does not verify the signature, nor check
// the content type, the size or for a replay: Verifier.Verify does, and
// then calls Parse. Parse is exported to test payloads and for receivers
// that authenticate deliveries another way.
//
// It returns ErrPing for a GitHub ping and an *Error for anything that is
// not a well-formed push: ReasonUnsupportedEvent for another event,
// ReasonMalformed for a missing delivery ID or a bad payload.
func Parse(provider string, h http.Header, body []byte) (*Push, error) {
	switch provider {
	case GitHub:
		return parseGitHub(h, body)
	case GitLab:
		return parseGitLab(h, body)
	case Gitea:
		return parseGitea(h, body)
	default:
		return nil, refuse("", ReasonUnsupportedEvent, "unknown provider")
	}
}

// commit is the part of a payload's commit the three providers share.
type commit struct {
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Modified []string `json:"modified"`
}

// The payloads, reduced to the fields a Push needs. From the providers'
// documentation: GitHub's push event, GitLab's Push Hook, Gitea's push.
type (
	githubPush struct {
		Ref        string   `json:"ref"`
		Before     string   `json:"before"`
		After      string   `json:"after"`
		Forced     bool     `json:"forced"`
		Commits    []commit `json:"commits"`
		Repository struct {
			FullName string `json:"full_name"`
			CloneURL string `json:"clone_url"`
			SSHURL   string `json:"ssh_url"`
		} `json:"repository"`
	}
	gitlabPush struct {
		ObjectKind        string   `json:"object_kind"`
		Ref               string   `json:"ref"`
		Before            string   `json:"before"`
		After             string   `json:"after"`
		TotalCommitsCount int      `json:"total_commits_count"`
		Commits           []commit `json:"commits"`
		Project           struct {
			PathWithNamespace string `json:"path_with_namespace"`
			GitHTTPURL        string `json:"git_http_url"`
			GitSSHURL         string `json:"git_ssh_url"`
		} `json:"project"`
	}
	giteaPush struct {
		Ref          string   `json:"ref"`
		Before       string   `json:"before"`
		After        string   `json:"after"`
		TotalCommits int      `json:"total_commits"`
		Commits      []commit `json:"commits"`
		Repository   struct {
			FullName string `json:"full_name"`
			CloneURL string `json:"clone_url"`
			SSHURL   string `json:"ssh_url"`
		} `json:"repository"`
	}
)

// GitHub's webhook push payload lists at most this many commits.
const githubMaxCommits = 2048

func parseGitHub(h http.Header, body []byte) (*Push, error) {
	switch event, _ := single(h, "X-GitHub-Event"); event {
	case "push":
	case "ping":
		return nil, ErrPing
	case "":
		return nil, refuse(GitHub, ReasonMalformed, "missing X-GitHub-Event header")
	default:
		return nil, refuse(GitHub, ReasonUnsupportedEvent, "X-GitHub-Event is not push")
	}
	var pl githubPush
	if err := decode(GitHub, body, &pl); err != nil {
		return nil, err
	}
	p, err := build(GitHub, h, pl.Ref, pl.Before, pl.After, pl.Commits,
		Repository{FullName: pl.Repository.FullName, HTTPURL: pl.Repository.CloneURL, SSHURL: pl.Repository.SSHURL})
	if err != nil {
		return nil, err
	}
	p.Truncated = p.Truncated || pl.Forced || len(pl.Commits) >= githubMaxCommits
	return p, nil
}

func parseGitLab(h http.Header, body []byte) (*Push, error) {
	if err := requireEvent(GitLab, h, "X-Gitlab-Event", "Push Hook"); err != nil {
		return nil, err
	}
	var pl gitlabPush
	if err := decode(GitLab, body, &pl); err != nil {
		return nil, err
	}
	if pl.ObjectKind != "push" {
		return nil, refuse(GitLab, ReasonUnsupportedEvent, "object_kind is not push")
	}
	p, err := build(GitLab, h, pl.Ref, pl.Before, pl.After, pl.Commits,
		Repository{FullName: pl.Project.PathWithNamespace, HTTPURL: pl.Project.GitHTTPURL, SSHURL: pl.Project.GitSSHURL})
	if err != nil {
		return nil, err
	}
	// GitLab lists at most 20 commits and counts them all.
	p.Truncated = p.Truncated || pl.TotalCommitsCount > len(pl.Commits)
	return p, nil
}

func parseGitea(h http.Header, body []byte) (*Push, error) {
	if err := requireEvent(Gitea, h, "X-Gitea-Event", "push"); err != nil {
		return nil, err
	}
	var pl giteaPush
	if err := decode(Gitea, body, &pl); err != nil {
		return nil, err
	}
	p, err := build(Gitea, h, pl.Ref, pl.Before, pl.After, pl.Commits,
		Repository{FullName: pl.Repository.FullName, HTTPURL: pl.Repository.CloneURL, SSHURL: pl.Repository.SSHURL})
	if err != nil {
		return nil, err
	}
	// Gitea lists at most its feed's commit limit (5 by default) and counts
	// them all.
	p.Truncated = p.Truncated || pl.TotalCommits > len(pl.Commits)
	return p, nil
}

// decode unmarshals a payload. Its error is fixed text, not wrapping
// encoding/json's: those quote parts of the input, which must not reach an
// error or a log.
func decode(provider string, body []byte, v any) error {
	if json.Unmarshal(body, v) != nil {
		return refuse(provider, ReasonMalformed, "payload is not a JSON push object")
	}
	return nil
}

// build checks the fields every provider's push has and assembles a Push.
func build(provider string, h http.Header, ref, before, after string, commits []commit, repo Repository) (*Push, error) {
	delivery, ok := deliveryOf(provider, h)
	if !ok {
		return nil, refuse(provider, ReasonMalformed, "missing or malformed delivery ID header")
	}
	if !validRef(ref) {
		return nil, refuse(provider, ReasonMalformed, "ref is not a valid full ref name")
	}
	before, after = strings.ToLower(before), strings.ToLower(after)
	if !validHash(before) || !validHash(after) {
		return nil, refuse(provider, ReasonMalformed, "before or after is not a commit hash")
	}
	if repo == (Repository{}) {
		return nil, refuse(provider, ReasonMalformed, "payload names no repository")
	}
	p := &Push{
		Provider:   provider,
		Delivery:   delivery,
		Repository: repo,
		Ref:        ref,
		Before:     before,
		After:      after,
	}
	p.Changed, p.Truncated = changed(commits)
	if len(commits) == 0 && before != after && !isZero(after) {
		// A new ref at an existing commit, or a reset: the tree may have
		// changed with no commit to list it.
		p.Truncated = true
	}
	return p, nil
}

// changed returns the sorted, deduplicated paths the commits touch, and
// whether the list may be incomplete: a commit without file lists (as
// GitHub Actions' copy of the payload has), or a path dropped because it
// is not a clean relative path no git tree could hold.
func changed(commits []commit) (paths []string, truncated bool) {
	for _, c := range commits {
		if c.Added == nil && c.Removed == nil && c.Modified == nil {
			truncated = true
		}
		for _, list := range [][]string{c.Added, c.Removed, c.Modified} {
			for _, p := range list {
				if !fs.ValidPath(p) || p == "." {
					truncated = true
					continue
				}
				paths = append(paths, p)
			}
		}
	}
	slices.Sort(paths)
	return slices.Compact(paths), truncated
}

// deliveryOf returns the delivery ID a provider sends, and whether there is
// exactly one that is well formed.
//
// GitLab sends several IDs. A signed delivery's webhook-id is covered by
// the signature, so it is preferred; Idempotency-Key (GitLab 17.4 and
// later) stays the same across GitLab's retries of one event, which is
// what a replay cache wants; X-Gitlab-Event-UUID is the older one.
func deliveryOf(provider string, h http.Header) (string, bool) {
	var names []string
	switch provider {
	case GitHub:
		names = []string{"X-GitHub-Delivery"}
	case GitLab:
		names = []string{"Idempotency-Key", "X-Gitlab-Event-UUID"}
		if len(h.Values(headerStdSignature)) > 0 {
			names = []string{headerStdID}
		}
	case Gitea:
		names = []string{"X-Gitea-Delivery"}
	}
	for _, n := range names {
		if len(h.Values(n)) == 0 {
			continue
		}
		id, ok := single(h, n)
		if !ok || !validDelivery(id) {
			return "", false
		}
		return id, true
	}
	return "", false
}

// single returns the one value of header name; a header given twice is
// refused rather than guessed at.
func single(h http.Header, name string) (string, bool) {
	v := h.Values(name)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// maxDelivery bounds a delivery ID, and so the replay cache's memory.
// Providers send UUIDs (36 bytes) or short message IDs.
const maxDelivery = 128

func validDelivery(id string) bool {
	if id == "" || len(id) > maxDelivery {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// validHash accepts a full SHA-1 or SHA-256 commit hash in lowercase hex.
func validHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isZero(hash string) bool { return strings.Trim(hash, "0") == "" }

// validRef applies git check-ref-format's rules to a full ref name, so
// that a Ref is safe to hand to git and to compare.
func validRef(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || len(ref) > 1024 {
		return false
	}
	if strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//") ||
		strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock") {
		return false
	}
	for _, c := range []byte(ref) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return false
		}
	}
	for _, part := range strings.Split(ref, "/") {
		if part == "" || part[0] == '.' || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	return true
}

// requireEvent checks that header names the want event.
func requireEvent(provider string, h http.Header, header, want string) error {
	switch event, _ := single(h, header); event {
	case want:
		return nil
	case "":
		return refuse(provider, ReasonMalformed, "missing "+header+" header")
	default:
		return refuse(provider, ReasonUnsupportedEvent, header+" is not "+want)
	}
}
