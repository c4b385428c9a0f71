package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler"
	"github.com/reconciler-dev/reconciler/reconciler/output"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/sources/dir"
	"github.com/reconciler-dev/reconciler/sources/git"
	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/specs"
)

type diffFlags struct {
	rev, base      string
	format         string
	noColor        bool
	instances      string
	policies       string
	namespaces     []string
	allNamespaces  bool
	fleetNamespace string
	prune          bool
	builtinErrors  bool
	policyNamed    bool // --policy given: the directory must exist
	git            gitFlags
	api            apiFlags // --server: compare against what a running reconciler observed
	verify         string   // --verify-commits: head or strict
	allowedSigners string
	gpgKeyring     string
}

// gitFlags reach a remote repository. Secrets come from the environment,
// never from flags, which other users of the host can read in ps.
type gitFlags struct {
	username   string
	sshKey     string
	knownHosts string
	caFile     string
	cacheDir   string
}

func newDiffCommand() *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff [PATH|URL]",
		Short: "Show what would change, and what the policies say, without changing anything",
		Long: `Plan the fleet at PATH (a directory, default ".") or URL (a git remote) and
print the changes, the actions a real run would take and the policy verdicts.

Without --base the plan is against an empty fleet, so every valid instance is
a create. With --base REV it is against the fleet at that revision: the
merge-request view. A directory is read as its working tree unless --rev
names a revision; --rev and --base need PATH to be inside a git repository.
With --server URL it is against what a running reconciler observed: the
documents it applied, with spec.ssl as the agents last verified it, so the
plan shows drift (an instance whose datastore no longer serves TLS shows
spec.ssl disabled -> enabled).

With --verify-commits head (or strict) the revision planned must be signed
by a key of --allowed-signers (SSH) or --gpg-keyring (GPG), as the daemon's
source.git.verify checks before it applies anything; strict checks every
commit since --base too, which must then be an ancestor of --rev (in a merge
request pipeline, the merge base: GitLab's CI_MERGE_REQUEST_DIFF_BASE_SHA).
An unverified revision is an error (exit 1) that names the commit and the
reason.

Exit status: 0 nothing to change and no denial; 2 changes; 3 a policy denies;
1 an error (an invalid file, a policy that does not compile, an unreachable
source). When several apply, the first of 1, 3, 2 wins.

Remote credentials come from the environment: RECONCILER_GIT_TOKEN (https
token), RECONCILER_GIT_PASSWORD (https password, with --git-username) and
RECONCILER_SSH_KEY_PASSPHRASE.`,
		Example: `  # In CI, on a merge request:
  reconciler diff --base origin/main -o markdown > plan.md

  # The fleet at a remote's main branch, as JSON:
  reconciler diff https://git.example.com/platform/fleet.git --rev main -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := "."
			if len(args) == 1 {
				target = args[0]
			}
			f.policyNamed = cmd.Flags().Changed("policy")
			return runDiff(cmd.Context(), cmd.OutOrStdout(), target, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.rev, "rev", "", "revision to plan (default: the working tree of a directory, HEAD of a URL)")
	fl.StringVar(&f.base, "base", "", "revision to compare against (default: an empty fleet)")
	fl.StringVarP(&f.format, "output", "o", "text", "output format: text, json or markdown")
	fl.BoolVar(&f.noColor, "no-color", false, "never colour text output (also when NO_COLOR is set, or output is not a terminal)")
	fl.StringVar(&f.instances, "instances", "instances", "directory of instance files, relative to the fleet root")
	fl.StringVar(&f.policies, "policy", "policies", "directory of Rego policies, relative to the fleet root, read at --rev")
	fl.StringArrayVarP(&f.namespaces, "namespace", "n", []string{"main"}, "policy namespace (package) to evaluate; repeatable; globs such as 'team.*' allowed")
	fl.BoolVar(&f.allNamespaces, "all-namespaces", false, "evaluate every policy namespace (but the fleet one)")
	fl.StringVar(&f.fleetNamespace, "fleet-namespace", "fleet", "namespace of fleet-scope rules, which see input.instances")
	fl.BoolVar(&f.builtinErrors, "show-builtin-errors", false, "make a failing Rego builtin (to_number(\"x\"), ...) an error instead of a rule that silently does not fire, as conftest's flag")
	f.api.register(fl)
	fl.StringVar(&f.verify, "verify-commits", "", "refuse a revision whose commits are not signed by a trusted key: head (the one planned) or strict (every commit since --base); needs --rev or a URL")
	fl.StringVar(&f.allowedSigners, "allowed-signers", "", "OpenSSH allowed_signers file of the keys trusted to sign commits (gpg.format=ssh)")
	fl.StringVar(&f.gpgKeyring, "gpg-keyring", "", "OpenPGP public keyring of the keys trusted to sign commits (gpg --export)")
	fl.BoolVar(&f.prune, "prune", false, "plan instances removed from the fleet as deleted (certificate revoked, RPC key retired) rather than released")
	fl.StringVar(&f.git.username, "git-username", "", "username for https remotes (password from RECONCILER_GIT_PASSWORD)")
	fl.StringVar(&f.git.sshKey, "ssh-key", "", "private key file for ssh remotes")
	fl.StringVar(&f.git.knownHosts, "known-hosts", "", "known_hosts file for ssh remotes (default ~/.ssh/known_hosts)")
	fl.StringVar(&f.git.caFile, "git-ca-file", "", "CA bundle to verify https remotes")
	fl.StringVar(&f.git.cacheDir, "git-cache-dir", "", "where remote repositories are cloned (default: the user cache directory)")
	return cmd
}

func runDiff(ctx context.Context, stdout io.Writer, target string, f diffFlags) error {
	var render func(io.Writer, output.Report) error
	switch f.format {
	case "text":
		color := !f.noColor && os.Getenv("NO_COLOR") == "" && isTerminal(stdout)
		render = func(w io.Writer, r output.Report) error { return output.Text(w, r, color) }
	case "json":
		render = output.JSON
	case "markdown", "md":
		render = output.Markdown
	default:
		return fmt.Errorf("parse --output: unknown format %q; use text, json or markdown", f.format)
	}

	desired, base, repo, err := openSnapshots(ctx, target, f)
	if err != nil {
		return err
	}
	if f.verify != "" {
		if err := verifyRevision(ctx, repo, desired, base, f); err != nil {
			return err
		}
	}
	var observed []*specs.Instance
	if f.api.server != "" {
		if base != nil {
			return fmt.Errorf("diff: --base and --server compare against different things: choose one")
		}
		if observed, err = fetchObserved(ctx, f.api); err != nil {
			return err
		}
	}
	policyOpts := []policy.Option{policy.WithFleetNamespace(f.fleetNamespace)}
	if f.builtinErrors {
		policyOpts = append(policyOpts, policy.WithBuiltinErrors())
	}
	if f.allNamespaces {
		policyOpts = append(policyOpts, policy.WithAllNamespaces())
	} else {
		policyOpts = append(policyOpts, policy.WithNamespaces(f.namespaces...))
	}
	p, err := reconciler.Diff(ctx, reconciler.DiffInput{
		Desired:         desired,
		Base:            base,
		Observed:        observed,
		Instances:       f.instances,
		Policies:        f.policies,
		RequirePolicies: f.policyNamed,
		PolicyOptions:   policyOpts,
		Defaults:        specs.DefaultDefaults(),
		Plan:            plan.Options{Prune: f.prune},
	})
	if err != nil {
		return err
	}
	report := output.Report{Plan: p, Fleet: target, Revision: desired.Revision}
	if base != nil {
		report.Base = base.Revision
	}
	if f.api.server != "" {
		report.Base = "observed by " + f.api.server
	}
	if err := render(stdout, report); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	if code := p.ExitCode(); code != 0 {
		return exitCode(code)
	}
	return nil
}

// scpLike matches git's user@host:path remote syntax.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:`)

func isRemote(target string) bool {
	return strings.Contains(target, "://") || scpLike.MatchString(target)
}

// openSnapshots reads the desired and base states. A URL is cloned. A
// directory's desired state is its working tree unless --rev names a
// revision, so uncommitted edits show against --base.
func openSnapshots(ctx context.Context, target string, f diffFlags) (desired, base *sources.Snapshot, repo *git.Source, err error) {
	switch {
	case isRemote(target):
		opts, err := f.git.options()
		if err != nil {
			return nil, nil, nil, err
		}
		if repo, err = git.Clone(ctx, target, opts...); err != nil {
			return nil, nil, nil, err
		}
	case f.rev != "" || f.base != "":
		if repo, err = git.Open(ctx, target); err != nil {
			return nil, nil, nil, fmt.Errorf("--rev and --base need a git repository: %w", err)
		}
	}

	var src sources.Source = repo
	if f.rev == "" && !isRemote(target) {
		if src, err = dir.New(target); err != nil {
			return nil, nil, nil, err
		}
	}
	if desired, err = src.Snapshot(ctx, f.rev); err != nil {
		return nil, nil, nil, err
	}
	if f.base != "" {
		if base, err = repo.Snapshot(ctx, f.base); err != nil {
			return nil, nil, nil, err
		}
	}
	return desired, base, repo, nil
}

// verifyRevision refuses the revision planned unless its commits are
// signed as --verify-commits asks.
func verifyRevision(ctx context.Context, repo *git.Source, desired, base *sources.Snapshot, f diffFlags) error {
	mode, err := signature.ParseMode(f.verify)
	if err != nil || mode == signature.ModeOff {
		return fmt.Errorf("diff: --verify-commits %q: use head or strict", f.verify)
	}
	if repo == nil || desired.Revision == "" || desired.Revision == "worktree" {
		return errors.New("diff: --verify-commits checks commits: name one with --rev (a working tree has no signature)")
	}
	v, err := signature.New(signature.Config{AllowedSigners: f.allowedSigners, GPGKeyring: f.gpgKeyring})
	if err != nil {
		return fmt.Errorf("diff: %w (give --allowed-signers, --gpg-keyring or both)", err)
	}
	from := ""
	if base != nil {
		from = base.Revision
	}
	if _, err := repo.Verify(ctx, v, mode, from, desired.Revision); err != nil {
		return fmt.Errorf("diff: refuse revision %s: %w", desired.Revision, err)
	}
	return nil
}

func (g gitFlags) options() ([]git.Option, error) {
	auth := git.Auth{
		Username:         g.username,
		Password:         os.Getenv("RECONCILER_GIT_PASSWORD"),
		Token:            os.Getenv("RECONCILER_GIT_TOKEN"),
		SSHKeyFile:       g.sshKey,
		SSHKeyPassphrase: os.Getenv("RECONCILER_SSH_KEY_PASSPHRASE"),
		KnownHostsFile:   g.knownHosts,
	}
	if g.caFile != "" {
		ca, err := os.ReadFile(g.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --git-ca-file: %w", err)
		}
		auth.CABundle = ca
	}
	opts := []git.Option{git.WithAuth(auth)}
	if g.cacheDir != "" {
		opts = append(opts, git.WithCacheDir(g.cacheDir))
	}
	return opts, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// fetchObserved reads each instance as its host has it from a running
// reconciler (GET /v1/observed): the documents it applied, with spec.ssl
// as the agents last verified it.
func fetchObserved(ctx context.Context, a apiFlags) ([]*specs.Instance, error) {
	c, err := a.client()
	if err != nil {
		return nil, fmt.Errorf("diff --server: %w", err)
	}
	var r struct {
		Instances []struct {
			File     string         `json:"file"`
			Document map[string]any `json:"document"`
		}
	}
	if err := c.call(ctx, "GET", "/v1/observed", &r); err != nil {
		return nil, fmt.Errorf("diff --server: %w", err)
	}
	var out []*specs.Instance
	for _, d := range r.Instances {
		data, err := json.Marshal(d.Document)
		if err != nil {
			return nil, fmt.Errorf("diff --server: %w", err)
		}
		ins, err := specs.Parse(d.File, data, specs.DefaultDefaults())
		if err != nil {
			return nil, fmt.Errorf("diff --server: the reconciler's observed state of %s does not parse: %w", d.File, err)
		}
		out = append(out, ins...)
	}
	return out, nil
}
