package git

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconciler-dev/reconciler/sources/signature"
)

// ErrRewritten is wrapped by the errors of Verify when the last revision
// applied is not an ancestor of the new one, or is no longer in the
// repository: the branch was reset or force-pushed, so which commits are
// new cannot be told.
var ErrRewritten = errors.New("history rewritten")

// Verify checks the commits that moving the fleet from the revision from
// (the last one applied; "" for none) to the revision to brings in,
// against v, as mode says:
//
//   - signature.ModeOff checks no signature; v may be nil.
//   - signature.ModeHead checks the signature of to's commit only.
//   - signature.ModeStrict checks to's and that of every commit reachable
//     from to and not from from (git rev-list from..to): merges, and the
//     commits of the branches they merge. Without from there is no range,
//     and only to is checked, as in ModeHead.
//
// Whatever the mode, a from that is given must be to or an ancestor of it:
// if it is not, or is no longer in the repository, the error wraps
// ErrRewritten and names both commits. A caller that takes a rewritten
// history (an operator accepted it) passes "" as from.
//
// A refused commit makes an error that wraps a *signature.Error naming it
// and why; in strict mode it is the first refused with parents before
// children. Otherwise the Report lists the commits checked and who signed
// them.
//
// Only the commits of the range are read, and those around from that are
// newer than the oldest of them: the cost grows with the range, not with
// the history. Where committer times run backwards from parent to child
// (clock skew), strict mode may check an older commit too; it never skips
// a new one. The commits are read under the Source's lock, then checked
// without it.
func (s *Source) Verify(ctx context.Context, v *signature.Verifier, mode signature.Mode, from, to string) (*signature.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", orHEAD(to), err)
	}
	switch mode {
	case signature.ModeOff, signature.ModeHead, signature.ModeStrict:
	default:
		return nil, fmt.Errorf("verify %s: unknown verification mode %q: use off, head or strict", orHEAD(to), string(mode))
	}
	if mode != signature.ModeOff && v == nil {
		return nil, fmt.Errorf("verify %s: mode %s needs a signature.Verifier", orHEAD(to), mode)
	}
	report, commits, err := s.toVerify(ctx, mode, from, to)
	if err != nil {
		return nil, err
	}
	what := orHEAD(to)
	if mode == signature.ModeStrict && report.From != "" {
		what = fmt.Sprintf("%s (%d commits since %s)", what, len(commits), short(report.From))
	}
	for _, c := range commits {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("verify %s: %w", what, err)
		}
		signer, err := v.VerifyCommit(c)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", what, err)
		}
		report.Signers = append(report.Signers, *signer)
	}
	return report, nil
}

// IsAncestor reports whether the commit from names is an ancestor of to's,
// or the same commit. It reads only the commits between them, and, when
// from is not an ancestor, those of to's history newer than where the two
// histories meet.
func (s *Source) IsAncestor(ctx context.Context, from, to string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("check ancestry of %s: %w", orHEAD(to), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fromCommit, err := s.resolve(from)
	if err != nil {
		return false, fmt.Errorf("check ancestry of %s: %w", orHEAD(to), err)
	}
	toCommit, err := s.resolve(to)
	if err != nil {
		return false, fmt.Errorf("check ancestry of %s: %w", orHEAD(to), err)
	}
	w, err := s.walk(ctx, fromCommit, toCommit)
	if err != nil {
		return false, fmt.Errorf("check ancestry of %s: %w", orHEAD(to), err)
	}
	return w.isAncestor(), nil
}

// toVerify resolves the revisions, checks that from is an ancestor of to,
// and returns the commits mode checks, parents before children, copied
// out of the repository.
func (s *Source) toVerify(ctx context.Context, mode signature.Mode, from, to string) (*signature.Report, []*object.Commit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	toCommit, err := s.resolve(to)
	if err != nil {
		return nil, nil, fmt.Errorf("verify %s: %w", orHEAD(to), err)
	}
	report := &signature.Report{Mode: mode, To: toCommit.Hash.String()}
	commits := []*object.Commit{toCommit}
	if from != "" {
		fromCommit, err := s.resolve(from)
		if errors.Is(err, ErrUnknownRevision) {
			return nil, nil, fmt.Errorf("verify %s: %w: the last revision %s is not in the repository: a force push dropped it, or the name is wrong: %w", orHEAD(to), ErrRewritten, from, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("verify %s: %w", orHEAD(to), err)
		}
		report.From = fromCommit.Hash.String()
		w, err := s.walk(ctx, fromCommit, toCommit)
		if err != nil {
			return nil, nil, fmt.Errorf("verify %s: %w", orHEAD(to), err)
		}
		if !w.isAncestor() {
			return nil, nil, fmt.Errorf("verify %s: %w: %s, the last revision applied, is not an ancestor of %s: the branch was reset or force-pushed",
				orHEAD(to), ErrRewritten, short(report.From), short(report.To))
		}
		if mode == signature.ModeStrict {
			if commits = w.newCommits(); len(commits) == 0 {
				commits = []*object.Commit{toCommit} // to is from
			}
		}
	}
	switch mode {
	case signature.ModeOff:
		return report, nil, nil
	case signature.ModeHead:
		commits = []*object.Commit{toCommit}
	}
	for i, c := range commits {
		if commits[i], err = s.detach(c); err != nil {
			return nil, nil, fmt.Errorf("verify %s: %w", orHEAD(to), err)
		}
	}
	return report, commits, nil
}

// detach returns a copy of c read into memory, which can be verified
// without s.mu: go-git may read a decoded commit's bytes from the pack
// again. The copy's hash is computed from those bytes, so a corrupt
// object cannot pass for the commit it claims to be. The caller holds s.mu.
func (s *Source) detach(c *object.Commit) (*object.Commit, error) {
	obj, err := s.repo.Storer.EncodedObject(plumbing.CommitObject, c.Hash)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", c.Hash, err)
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", c.Hash, err)
	}
	defer r.Close()
	mem := &plumbing.MemoryObject{}
	mem.SetType(plumbing.CommitObject)
	if _, err := io.Copy(mem, r); err != nil {
		return nil, fmt.Errorf("read commit %s: %w", c.Hash, err)
	}
	d, err := object.DecodeCommit(nil, mem)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", c.Hash, err)
	}
	if d.Hash != c.Hash {
		return nil, fmt.Errorf("read commit %s: its content hashes to %s: the repository is corrupt; clone it again", c.Hash, d.Hash)
	}
	return d, nil
}

// short abbreviates a commit hash as git log --oneline does.
func short(hash string) string {
	if len(hash) > 7 {
		return hash[:7]
	}
	return hash
}

// What reaches a commit in a walk.
const (
	fromTo   uint8 = 1 << iota // an ancestor of to, or to
	fromFrom                   // an ancestor of from, or from
)

// walkNode is a commit seen by a walk.
type walkNode struct {
	commit *object.Commit
	flags  uint8 // who reaches it
	done   uint8 // the flags its parents were given
	queued bool
	seq    int // when it was first queued, to break ties in time
}

// onlyTo reports whether n is reached from to only: a new commit.
func (n *walkNode) onlyTo() bool { return n.flags == fromTo }

// walk paints the histories of from and to, as git's merge-base and
// rev-list do, until what is reached from to only is known: the commits
// from..to. Commits are taken newest first by committer time, so the walk
// stops near from instead of at the root.
//
// Two rules make it exact. It goes on while a commit reached only from to
// waits in the queue, so every path from to is followed until it meets
// from's history: whether from is an ancestor of to never depends on
// commit times. And it goes on while a commit of from's history is as new
// as the oldest commit found from to only, so that one is not taken for
// new when it is old: this part trusts committer times, and may take an
// old commit for new where a parent is newer than its child (clock skew),
// never a new one for old.
type walk struct {
	from, to   *walkNode
	nodes      map[plumbing.Hash]*walkNode
	queue      byTime
	pending    int // queued nodes reached from to only
	candidates byAge
	seq        int
}

// walk runs a walk from the commits from and to. The caller holds s.mu.
func (s *Source) walk(ctx context.Context, from, to *object.Commit) (*walk, error) {
	w := &walk{nodes: map[plumbing.Hash]*walkNode{}}
	w.to = w.node(to)
	w.from = w.node(from)
	w.reach(w.to, fromTo)
	w.reach(w.from, fromFrom)
	for !w.finished() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := heap.Pop(&w.queue).(*walkNode)
		n.queued = false
		if n.onlyTo() {
			w.pending--
		}
		f := n.flags
		if f == n.done {
			continue
		}
		n.done = f
		if f == fromTo {
			heap.Push(&w.candidates, n)
		}
		for _, h := range n.commit.ParentHashes {
			p, ok := w.nodes[h]
			if !ok {
				c, err := s.repo.CommitObject(h)
				if err != nil {
					return nil, fmt.Errorf("read commit %s, a parent of %s (is the repository a shallow clone? fetch its whole history): %w", h, n.commit.Hash, err)
				}
				p = w.node(c)
			}
			w.reach(p, f)
		}
	}
	return w, nil
}

func (w *walk) node(c *object.Commit) *walkNode {
	if n, ok := w.nodes[c.Hash]; ok {
		return n
	}
	n := &walkNode{commit: c}
	w.nodes[c.Hash] = n
	return n
}

// reach adds the flags f to n, and queues n if that gives it new ones.
func (w *walk) reach(n *walkNode, f uint8) {
	if n.flags|f == n.flags {
		return
	}
	if n.queued {
		if n.onlyTo() {
			w.pending--
		}
		n.flags |= f
		if n.onlyTo() {
			w.pending++
		}
		return
	}
	n.flags |= f
	n.queued = true
	if n.seq == 0 {
		w.seq++
		n.seq = w.seq
	}
	if n.onlyTo() {
		w.pending++
	}
	heap.Push(&w.queue, n)
}

// finished reports whether the walk has found all it must.
func (w *walk) finished() bool {
	if w.pending > 0 {
		return false
	}
	for len(w.candidates) > 0 && !w.candidates[0].onlyTo() {
		heap.Pop(&w.candidates)
	}
	if len(w.queue) == 0 || len(w.candidates) == 0 {
		return true
	}
	return w.queue[0].commit.Committer.When.Before(w.candidates[0].commit.Committer.When)
}

// isAncestor reports whether from is an ancestor of to, or to itself.
func (w *walk) isAncestor() bool { return w.from.flags&fromTo != 0 }

// newCommits returns the commits reached from to only, parents before
// children, to last: the first bad one found is the earliest to blame.
func (w *walk) newCommits() []*object.Commit {
	if !w.to.onlyTo() {
		return nil
	}
	type frame struct {
		n    *walkNode
		next int
	}
	var out []*object.Commit
	seen := map[plumbing.Hash]bool{w.to.commit.Hash: true}
	stack := []frame{{n: w.to}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if parents := top.n.commit.ParentHashes; top.next < len(parents) {
			h := parents[top.next]
			top.next++
			if p := w.nodes[h]; p != nil && p.onlyTo() && !seen[h] {
				seen[h] = true
				stack = append(stack, frame{n: p})
			}
			continue
		}
		out = append(out, top.n.commit)
		stack = stack[:len(stack)-1]
	}
	return out
}

// byTime is a heap of walk nodes, newest committer time first, then
// first queued first.
type byTime []*walkNode

func (q byTime) Len() int { return len(q) }
func (q byTime) Less(i, j int) bool {
	ti, tj := q[i].commit.Committer.When, q[j].commit.Committer.When
	if !ti.Equal(tj) {
		return ti.After(tj)
	}
	return q[i].seq < q[j].seq
}
func (q byTime) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *byTime) Push(x any)   { *q = append(*q, x.(*walkNode)) }
func (q *byTime) Pop() any {
	old := *q
	n := old[len(old)-1]
	*q = old[:len(old)-1]
	return n
}

// byAge is a heap of walk nodes, oldest committer time first.
type byAge []*walkNode

func (q byAge) Len() int { return len(q) }
func (q byAge) Less(i, j int) bool {
	return q[i].commit.Committer.When.Before(q[j].commit.Committer.When)
}
func (q byAge) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *byAge) Push(x any)   { *q = append(*q, x.(*walkNode)) }
func (q *byAge) Pop() any {
	old := *q
	n := old[len(old)-1]
	*q = old[:len(old)-1]
	return n
}
