package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

var (
	// ErrNoPolicies means the policy directory holds no .rego file. It is an
	// error rather than an empty pass: a CI job pointed at the wrong
	// directory must fail, not approve everything.
	ErrNoPolicies = errors.New("no policies")

	// ErrNoNamespace means a requested namespace, or glob of namespaces,
	// matches no package that has deny, violation or warn rules.
	ErrNoNamespace = errors.New("no such policy namespace")

	// ErrNoTests means Test found no test rule to run (none at all, or none
	// matching the run filter).
	ErrNoTests = errors.New("no policy tests")
)

// Problem is one reason a policy directory cannot be used: a Rego parse or
// compile error, a rule that can never produce a message, or a data file
// that cannot be read.
type Problem struct {
	// File is the slash-separated path of the file, relative to the root of
	// the fs.FS the policies were read from.
	File string `json:"file"`
	// Line is 1-based; 0 when the problem is the whole file.
	Line int `json:"line"`
	// Message says what is wrong, with OPA's error code first where OPA
	// reported the problem ("rego_parse_error: unexpected eof token").
	Message string `json:"message"`
}

// String formats the problem as file:line: message.
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	if p.File != "" {
		return p.File + ": " + p.Message
	}
	return p.Message
}

// Error is returned by Load and Test when the policies cannot be used. It
// holds every problem found, sorted by file and line, so that callers can
// list them all (as `reconciler diff -o json` does under errors).
type Error struct {
	Problems []Problem
}

// Error lists the problems, one per line after a summary.
func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "policy error: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d policy errors:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// newError sorts and de-duplicates problems; it returns nil when there are
// none, so callers can write `if err := newError(ps); err != nil`.
func newError(problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	slices.SortFunc(problems, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return &Error{Problems: slices.Compact(problems)}
}

// EvalError is a failure while evaluating policies, such as a rule that
// produced conflicting values or, with WithBuiltinErrors, a builtin
// function that failed. It names the document being evaluated so that the
// author can reproduce the failure.
type EvalError struct {
	// Namespace is the package being evaluated ("main", or the fleet
	// namespace for fleet-scope rules).
	Namespace string
	// Name and File identify the instance document; both are empty for
	// fleet-scope evaluation, whose input is every document.
	Name string
	File string
	Err  error
}

// Error names the namespace and the document, then the cause.
func (e *EvalError) Error() string {
	if e.File == "" && e.Name == "" {
		return fmt.Sprintf("evaluate fleet policies in namespace %s: %v", e.Namespace, e.Err)
	}
	if e.Namespace == "" { // the input could not be converted: no namespace ran
		return fmt.Sprintf("evaluate policies for %s (instance %q): %v", e.File, e.Name, e.Err)
	}
	return fmt.Sprintf("evaluate policies in namespace %s for %s (instance %q): %v", e.Namespace, e.File, e.Name, e.Err)
}

// Unwrap returns the cause.
func (e *EvalError) Unwrap() error { return e.Err }
