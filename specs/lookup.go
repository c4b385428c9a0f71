package specs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// NotFoundError is Find's error for a name that no valid instance of the
// fleet has.
type NotFoundError struct {
	Name string
	// Similar are the fleet's names close to Name (a typo, or a prefix
	// such as orders-db for orders-db-staging), closest first.
	Similar []string
	// Broken are the files skipped for errors: their instances are
	// unknown, and Name may be one of them.
	Broken []string
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no instance named %q in the fleet", e.Name)
	if len(e.Similar) > 0 {
		quoted := make([]string, len(e.Similar))
		for i, s := range e.Similar {
			quoted[i] = fmt.Sprintf("%q", s)
		}
		fmt.Fprintf(&b, "; did you mean %s?", strings.Join(quoted, " or "))
	}
	if len(e.Broken) > 0 {
		fmt.Fprintf(&b, " (%s could not be read, so the instances there are unknown: fix the errors first)", strings.Join(e.Broken, ", "))
	}
	return b.String()
}

// Find returns the valid instance named name. A name defined in several
// files returns the ErrorList of those definitions; any other missing name
// a *NotFoundError.
func (f *Fleet) Find(name string) (*Instance, error) {
	i, ok := slices.BinarySearchFunc(f.Instances, name, func(in *Instance, name string) int {
		return strings.Compare(in.Metadata.Name, name)
	})
	if ok {
		return f.Instances[i], nil
	}
	if f.Held(name) {
		var dups ErrorList
		also := fmt.Sprintf("instance %q is also defined in ", name)
		for _, e := range f.Errors {
			if strings.HasPrefix(e.Message, also) {
				dups = append(dups, e)
			}
		}
		return nil, dups
	}
	err := &NotFoundError{Name: name}
	for file := range f.broken {
		err.Broken = append(err.Broken, file)
	}
	slices.Sort(err.Broken)
	names := make([]string, len(f.Instances))
	for i, in := range f.Instances {
		names[i] = in.Metadata.Name
	}
	err.Similar = similarNames(name, names, 3)
	return nil, err
}

// similarNames returns the candidates closest to s, up to n of them, when
// they are near enough to be what was meant: a typo or two away, or s
// extended or cut short (orders-db for orders-db-staging).
func similarNames(s string, candidates []string, n int) []string {
	limit := max(2, len(s)/4)
	best := limit + 1
	var out []string
	for _, c := range candidates {
		d := levenshtein.ComputeDistance(s, c)
		if d > limit && len(s) >= 3 && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)) {
			d = limit
		}
		switch {
		case d < best:
			best, out = d, []string{c}
		case d == best && len(out) < n:
			out = append(out, c)
		}
	}
	return out
}
