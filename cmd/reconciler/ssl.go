package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reconciler-dev/reconciler/sources/dir"
	"github.com/reconciler-dev/reconciler/sources/git"
	"github.com/reconciler-dev/reconciler/specs"
)

type sslFlags struct {
	repo      string
	instances string
	branch    string
	message   string
	push      bool
	remote    string
	git       gitFlags
}

func newSSLCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ssl",
		Short: "Turn SSL on or off for an instance, as a commit ready for a merge request",
	}
	cmd.AddCommand(newSSLToggleCommand(true), newSSLToggleCommand(false), newSSLShowCommand())
	return cmd
}

func newSSLToggleCommand(enable bool) *cobra.Command {
	verb := "disable"
	if enable {
		verb = "enable"
	}
	var f sslFlags
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: fmt.Sprintf("Commit spec.ssl: %sd for instance NAME on a new branch", verb),
		Long: fmt.Sprintf(`Find the file of the fleet at --repo (a checkout of the fleet repository) that
defines instance NAME, set its spec.ssl to %[1]sd, and commit that one line
on a new branch (default ssl-%[2]s-NAME), which is checked out. Comments and
formatting of the file are kept; nothing else is committed. With --push the
branch is pushed, ready for a merge request.

The file must have no uncommitted changes of its own. An instance that is
already %[1]sd is left alone, with a note and no commit.

Exit status: 0 done (or nothing to do); 1 an error.

Push credentials come from the environment, as for diff: RECONCILER_GIT_TOKEN,
RECONCILER_GIT_PASSWORD (with --git-username) and
RECONCILER_SSH_KEY_PASSPHRASE.`, verb, verb),
		Example: fmt.Sprintf(`  reconciler ssl %[1]s orders-db
  reconciler ssl %[1]s orders-db --push -m "ssl: %[1]s on orders-db (CHG-1234)"`, verb),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSSL(cmd.Context(), cmd.OutOrStdout(), args[0], enable, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", ".", "the fleet's directory in a checkout of the fleet repository")
	fl.StringVar(&f.instances, "instances", "instances", "directory of instance files, relative to --repo")
	fl.StringVar(&f.branch, "branch", "", fmt.Sprintf("branch to create (default ssl-%s-NAME)", verb))
	fl.StringVarP(&f.message, "message", "m", "", fmt.Sprintf(`commit message (default "ssl: %s on NAME")`, verb))
	fl.BoolVar(&f.push, "push", false, "push the branch and make it track the remote's")
	fl.StringVar(&f.remote, "remote", "origin", "remote to push to")
	fl.StringVar(&f.git.username, "git-username", "", "username for https remotes (password from RECONCILER_GIT_PASSWORD)")
	fl.StringVar(&f.git.sshKey, "ssh-key", "", "private key file for ssh remotes")
	fl.StringVar(&f.git.knownHosts, "known-hosts", "", "known_hosts file for ssh remotes (default ~/.ssh/known_hosts)")
	fl.StringVar(&f.git.caFile, "git-ca-file", "", "CA bundle to verify https remotes")
	return cmd
}

func runSSL(ctx context.Context, stdout io.Writer, name string, enable bool, f sslFlags) error {
	verb, want := "disable", specs.Disabled
	if enable {
		verb, want = "enable", specs.Enabled
	}
	// The working tree, as diff reads a directory.
	src, err := dir.New(f.repo)
	if err != nil {
		return err
	}
	snap, err := src.Snapshot(ctx, "")
	if err != nil {
		return err
	}
	fleet, err := specs.Load(ctx, snap.FS, f.instances)
	if err != nil {
		return err
	}
	in, err := fleet.Find(name)
	if err != nil {
		return err
	}
	file := filepath.Join(f.repo, filepath.FromSlash(in.File))
	before, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read instance file: %w", err)
	}
	after, changed, err := specs.SetSSL(before, name, enable)
	if err != nil {
		return placed(err, in.File)
	}
	if !changed {
		fmt.Fprintf(stdout, "%s already has spec.ssl: %s in %s: nothing to commit.\n", name, want, in.File)
		return nil
	}

	base, err := git.HeadBranch(f.repo)
	if err != nil {
		return fmt.Errorf("%s needs to be in a git checkout of the fleet repository: %w", f.repo, err)
	}
	author, err := git.Author(f.repo)
	if err != nil {
		return err
	}
	branch := f.branch
	if branch == "" {
		branch = "ssl-" + verb + "-" + name
	}
	message := f.message
	if message == "" {
		message = fmt.Sprintf("ssl: %s on %s", verb, name)
	}
	hash, err := git.CommitFile(ctx, f.repo, branch, in.File, after, message, author)
	if err != nil {
		return err
	}

	printLineChange(stdout, in.File, before, after)
	fmt.Fprintf(stdout, "\nCommitted %s on the new branch %s, now checked out:\n  %s\n", hash[:12], branch, message)
	if f.push {
		opts, err := f.git.options()
		if err != nil {
			return err
		}
		if err := git.Push(ctx, f.repo, f.remote, branch, opts...); err != nil {
			return fmt.Errorf("%w (the commit is made: push it with git push -u %s %s)", err, f.remote, branch)
		}
		fmt.Fprintf(stdout, "Pushed %s to %s.\n", branch, f.remote)
	}

	target, baseRev := " into "+base, base
	if base == "" {
		target, baseRev = "", "HEAD~1" // HEAD was detached
	}
	diff := "reconciler diff"
	if f.repo != "." {
		diff += " " + f.repo
	}
	if f.instances != "instances" {
		diff += " --instances " + f.instances
	}
	diff += " --base " + baseRev
	fmt.Fprintln(stdout, "\nNext:")
	if !f.push {
		fmt.Fprintf(stdout, "  git push -u %s %s\n", f.remote, branch)
	}
	fmt.Fprintf(stdout, "  open a merge request from %s%s\n", branch, target)
	fmt.Fprintf(stdout, "  %s    shows its plan, as CI will\n", diff)
	return nil
}

// placed sets file on the errors of an edit, which do not know it.
func placed(err error, file string) error {
	var list specs.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			e.File = file
		}
		return err
	}
	var e *specs.Error
	if errors.As(err, &e) {
		e.File = file
	}
	return err
}

// printLineChange prints the one line an edit changed or added, with its
// line number, as a diff would.
func printLineChange(w io.Writer, file string, before, after []byte) {
	a, b := bytes.SplitAfter(before, []byte("\n")), bytes.SplitAfter(after, []byte("\n"))
	head := 0
	for head < len(a) && head < len(b) && bytes.Equal(a[head], b[head]) {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && bytes.Equal(a[len(a)-1-tail], b[len(b)-1-tail]) {
		tail++
	}
	fmt.Fprintf(w, "%s:%d\n", file, head+1)
	for _, l := range a[head : len(a)-tail] {
		fmt.Fprintf(w, "- %s\n", strings.TrimRight(string(l), "\r\n"))
	}
	for _, l := range b[head : len(b)-tail] {
		fmt.Fprintf(w, "+ %s\n", strings.TrimRight(string(l), "\r\n"))
	}
}
