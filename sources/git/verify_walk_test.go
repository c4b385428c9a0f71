package git

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/go-cmp/cmp"
)

// graph is a history built commit by commit in memory.
type graph struct {
	t       *testing.T
	src     *Source
	tree    plumbing.Hash
	commits map[string]*object.Commit
	names   map[plumbing.Hash]string
}

func newGraph(t *testing.T) *graph {
	t.Helper()
	repo, err := gogit.Init(memory.NewStorage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := repo.Storer.NewEncodedObject()
	if err := (&object.Tree{}).Encode(obj); err != nil {
		t.Fatal(err)
	}
	tree, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &graph{t: t, src: &Source{repo: repo}, tree: tree, commits: map[string]*object.Commit{}, names: map[plumbing.Hash]string{}}
}

// add commits name with the given parents at minute min of 2025.
func (g *graph) add(name string, min int, parents ...string) {
	g.t.Helper()
	when := time.Date(2025, 1, 1, 0, min, 0, 0, time.UTC)
	c := &object.Commit{
		Author:    object.Signature{Name: "A", Email: "a@example.com", When: when},
		Committer: object.Signature{Name: "A", Email: "a@example.com", When: when},
		Message:   name + "\n",
		TreeHash:  g.tree,
	}
	for _, p := range parents {
		c.ParentHashes = append(c.ParentHashes, g.commits[p].Hash)
	}
	obj := g.src.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		g.t.Fatal(err)
	}
	h, err := g.src.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		g.t.Fatal(err)
	}
	stored, err := g.src.repo.CommitObject(h)
	if err != nil {
		g.t.Fatal(err)
	}
	g.commits[name] = stored
	g.names[h] = name
}

// walk returns whether from is an ancestor of to, and the names of the
// commits from..to in the walk's order.
func (g *graph) walk(from, to string) (bool, []string) {
	g.t.Helper()
	w, err := g.src.walk(context.Background(), g.commits[from], g.commits[to])
	if err != nil {
		g.t.Fatal(err)
	}
	var names []string
	for _, c := range w.newCommits() {
		names = append(names, g.names[c.Hash])
	}
	return w.isAncestor(), names
}

func TestWalk(t *testing.T) {
	tests := []struct {
		name     string
		build    func(g *graph)
		from, to string
		ancestor bool
		want     []string
	}{
		{
			name:     "linear history",
			build:    func(g *graph) { g.add("a", 1); g.add("b", 2, "a"); g.add("c", 3, "b"); g.add("d", 4, "c") },
			from:     "b",
			to:       "d",
			ancestor: true,
			want:     []string{"c", "d"},
		},
		{
			name:     "the same commit",
			build:    func(g *graph) { g.add("a", 1); g.add("b", 2, "a") },
			from:     "b",
			to:       "b",
			ancestor: true,
		},
		{
			name:  "a rollback is not a descendant",
			build: func(g *graph) { g.add("a", 1); g.add("b", 2, "a"); g.add("c", 3, "b") },
			from:  "c",
			to:    "b",
		},
		{
			name: "a force push diverges",
			build: func(g *graph) {
				g.add("a", 1)
				g.add("b", 2, "a")
				g.add("b2", 3, "a")
			},
			from: "b",
			to:   "b2",
		},
		{
			name:  "unrelated histories",
			build: func(g *graph) { g.add("a", 1); g.add("b", 2, "a"); g.add("x", 3); g.add("y", 4, "x") },
			from:  "b",
			to:    "y",
		},
		{
			name: "merge of a branch forked before from: its old commits are not new",
			build: func(g *graph) {
				g.add("a", 1)
				g.add("b", 2, "a")
				g.add("side", 3, "a")
				g.add("from", 4, "b")
				g.add("main", 5, "from")
				g.add("merge", 6, "main", "side")
			},
			from:     "from",
			to:       "merge",
			ancestor: true,
			want:     []string{"main", "side", "merge"},
		},
		{
			name: "every commit at the same time",
			build: func(g *graph) {
				g.add("a", 0)
				g.add("b", 0, "a")
				g.add("c", 0, "b")
				g.add("side", 0, "a")
				g.add("from", 0, "c")
				g.add("d", 0, "from")
				g.add("merge", 0, "d", "side")
			},
			from:     "from",
			to:       "merge",
			ancestor: true,
			want:     []string{"d", "side", "merge"},
		},
		{
			name: "a new commit dated before from is still new",
			build: func(g *graph) {
				g.add("a", 10)
				g.add("from", 20, "a")
				g.add("old clock", 1, "from")
				g.add("to", 30, "old clock")
			},
			from:     "from",
			to:       "to",
			ancestor: true,
			want:     []string{"old clock", "to"},
		},
		{
			name: "from dated after to is still an ancestor",
			build: func(g *graph) {
				g.add("a", 1)
				g.add("from", 50, "a")
				g.add("to", 2, "from")
			},
			from:     "from",
			to:       "to",
			ancestor: true,
			want:     []string{"to"},
		},
		{
			name: "criss-cross merges",
			build: func(g *graph) {
				g.add("a", 1)
				g.add("x", 2, "a")
				g.add("y", 3, "a")
				g.add("xy", 4, "x", "y")
				g.add("yx", 5, "y", "x")
				g.add("from", 6, "xy")
				g.add("to", 7, "from", "yx")
			},
			from:     "from",
			to:       "to",
			ancestor: true,
			want:     []string{"yx", "to"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGraph(t)
			tt.build(g)
			ancestor, got := g.walk(tt.from, tt.to)
			if ancestor != tt.ancestor {
				t.Errorf("isAncestor() = %v, want %v", ancestor, tt.ancestor)
			}
			if !ancestor {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("newCommits() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWalkRandom compares walks of random histories with the sets of
// ancestors computed in full. Whether from is an ancestor must always be
// right; the new commits must be exactly right when committer times never
// go back from parent to child, and may only take too many otherwise.
func TestWalkRandom(t *testing.T) {
	for _, skewed := range []bool{false, true} {
		for seed := range uint64(200) {
			t.Run(fmt.Sprintf("skewed=%v/seed=%d", skewed, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 1))
				g := newGraph(t)
				n := 5 + r.IntN(40)
				ties := 1 + r.IntN(3) // commits per minute
				parents := make([][]int, n)
				for i := range n {
					var ps []string
					if i > 0 && r.IntN(10) > 0 { // some roots
						for range 1 + r.IntN(2) {
							p := r.IntN(i)
							if !slices.Contains(parents[i], p) {
								parents[i] = append(parents[i], p)
								ps = append(ps, fmt.Sprint(p))
							}
						}
					}
					min := i / ties
					if skewed {
						min = r.IntN(n)
					}
					g.add(fmt.Sprint(i), min, ps...)
				}
				ancestors := func(x int) map[int]bool {
					seen := map[int]bool{}
					stack := []int{x}
					for len(stack) > 0 {
						c := stack[len(stack)-1]
						stack = stack[:len(stack)-1]
						if !seen[c] {
							seen[c] = true
							stack = append(stack, parents[c]...)
						}
					}
					return seen
				}
				for range 10 {
					from, to := r.IntN(n), r.IntN(n)
					ancFrom, ancTo := ancestors(from), ancestors(to)
					ancestor, got := g.walk(fmt.Sprint(from), fmt.Sprint(to))
					if ancestor != ancTo[from] {
						t.Fatalf("walk(%d, %d): isAncestor() = %v, want %v", from, to, ancestor, ancTo[from])
					}
					if !ancestor {
						continue
					}
					var want []string
					for c := range ancTo {
						if !ancFrom[c] {
							want = append(want, fmt.Sprint(c))
						}
					}
					slices.Sort(want)
					gotSorted := slices.Sorted(slices.Values(got))
					if !skewed {
						if diff := cmp.Diff(want, gotSorted); diff != "" {
							t.Fatalf("walk(%d, %d): newCommits() (-want +got):\n%s", from, to, diff)
						}
					} else {
						for _, c := range want {
							if !slices.Contains(got, c) {
								t.Fatalf("walk(%d, %d): newCommits() = %v misses %s", from, to, got, c)
							}
						}
					}
					// Parents before children.
					pos := map[string]int{}
					for i, c := range got {
						pos[c] = i
					}
					for _, c := range got {
						var ci int
						fmt.Sscan(c, &ci)
						for _, p := range parents[ci] {
							if pp, ok := pos[fmt.Sprint(p)]; ok && pp > pos[c] {
								t.Fatalf("walk(%d, %d): newCommits() = %v has %s before its parent %d", from, to, got, c, p)
							}
						}
					}
					if len(got) > 0 && got[len(got)-1] != fmt.Sprint(to) && from != to {
						t.Fatalf("walk(%d, %d): newCommits() = %v does not end with to", from, to, got)
					}
				}
			})
		}
	}
}
