package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestStatus is the outcome of one policy test.
type TestStatus string

// Test outcomes, worded as `opa test` reports them.
const (
	TestPass  TestStatus = "PASS"
	TestFail  TestStatus = "FAIL"
	TestError TestStatus = "ERROR"
	TestSkip  TestStatus = "SKIPPED"
)

// TestResult is the outcome of one test rule (test_*, or todo_test_* which
// is skipped).
type TestResult struct {
	// Package is the test's namespace ("main").
	Package string `json:"package"`
	// Name is the rule's name ("test_deny_plaintext"); OPA numbers
	// repeated names ("test_x#01").
	Name string `json:"name"`
	// File and Line locate the rule, File relative to the fleet root.
	File string `json:"file"`
	Line int    `json:"line"`

	Status   TestStatus    `json:"status"`
	Duration time.Duration `json:"duration"`
	// Message says why a test failed (the expression that was false or
	// undefined, with its file and line, and the failing cases of a
	// parametrized test) or errored; empty otherwise.
	Message string `json:"message,omitempty"`
	// Output is what the test's print() calls printed.
	Output string `json:"output,omitempty"`
}

// String formats the result as `STATUS file:line: package.name: message`.
func (r TestResult) String() string {
	s := fmt.Sprintf("%s %s:%d: data.%s.%s", r.Status, r.File, r.Line, r.Package, r.Name)
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// Test runs the policy unit tests under dir in fsys (`reconciler policy
// test`) with OPA's tester, the data documents beside the policies loaded
// as data, and returns one result per test rule, sorted by file and line.
//
// Policies that do not compile are an *Error, as for Load, since every
// test would fail for the same reason. A run with no test rule, or none
// matching WithRunFilter, is ErrNoTests.
func Test(ctx context.Context, fsys fs.FS, dir string, opts ...TestOption) ([]TestResult, error) {
	start := time.Now()
	c := testConfig{shared: defaultShared(), timeout: 5 * time.Second}
	for _, o := range opts {
		o.applyTest(&c)
	}
	files, err := readPolicies(fsys, dir)
	if err != nil {
		return nil, err
	}
	// The tester compiles again with its own stages added; compiling here
	// first reports every problem the way Load does.
	if _, err := compile(files.modules, true); err != nil {
		return nil, err
	}

	runner := tester.NewRunner().
		SetCompiler(newCompiler(true)).
		SetStore(files.store).
		SetModules(files.modules).
		CapturePrintOutput(true).
		EnableTracing(true). // to say which expression failed
		RaiseBuiltinErrors(c.builtinErrors).
		SetParallel(c.parallelism).
		SetTimeout(c.timeout)
	if c.run != nil {
		runner.Filter(c.run.String())
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return nil, newError(astProblems(astErrs))
		}
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	var results []TestResult
	for r := range ch {
		results = append(results, testResult(r))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	if len(results) == 0 {
		if c.run != nil {
			return nil, fmt.Errorf("%w: no test under %s matches %q", ErrNoTests, dir, c.run)
		}
		return nil, fmt.Errorf("%w: no test_ rule under %s", ErrNoTests, dir)
	}
	slices.SortFunc(results, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Name, b.Name))
	})

	counts := map[TestStatus]int{}
	for _, r := range results {
		counts[r.Status]++
	}
	c.log.InfoContext(ctx, "ran policy tests", "dir", dir, "pass", counts[TestPass], "fail", counts[TestFail],
		"error", counts[TestError], "skipped", counts[TestSkip], "duration", time.Since(start))
	return results, nil
}

func testResult(r *tester.Result) TestResult {
	out := TestResult{
		Package:  strings.TrimPrefix(r.Package, "data."),
		Name:     r.Name,
		Duration: r.Duration,
		Output:   string(r.Output),
	}
	if r.Location != nil {
		out.File, out.Line = r.Location.File, r.Location.Row
	}
	// An error wins over a failure: with builtin errors raised, a test
	// whose builtin failed is also undefined, and the error is the cause.
	switch {
	case r.Error != nil:
		out.Status, out.Message = TestError, r.Error.Error()
	case r.Fail:
		out.Status, out.Message = TestFail, failure(r)
	case r.Skip:
		out.Status = TestSkip
	default:
		out.Status = TestPass
	}
	return out
}

// failure says why a test failed: the first expression of the test's body
// that failed, found in the trace, and the failing cases of a
// parametrized test.
func failure(r *tester.Result) string {
	msg := "test is false or undefined"
	if e := failedExpr(r); e != nil {
		msg = fmt.Sprintf("%s:%d: %s is false or undefined", e.File, e.Row, e.Text)
	}
	var cases []string
	for name, sr := range r.SubResults.Iter {
		if sr.Fail && len(sr.SubResults) == 0 {
			cases = append(cases, strings.Join(name, "/"))
		}
	}
	if len(cases) > 0 {
		msg += "; failing cases: " + strings.Join(cases, ", ")
	}
	return msg
}

// failedExpr finds the test rule's evaluation in the trace and returns the
// location of the first expression of its body that failed.
func failedExpr(r *tester.Result) *ast.Location {
	if r.Location == nil {
		return nil
	}
	query := uint64(0)
	found := false
	for _, ev := range r.Trace {
		switch {
		case !found && ev.Op == topdown.EnterOp:
			if rule, ok := ev.Node.(*ast.Rule); ok && rule.Location != nil &&
				rule.Location.File == r.Location.File && rule.Location.Row == r.Location.Row {
				query, found = ev.QueryID, true
			}
		case found && ev.Op == topdown.FailOp && ev.QueryID == query:
			if _, ok := ev.Node.(*ast.Expr); ok && ev.Location != nil && len(ev.Location.Text) > 0 {
				return ev.Location
			}
		}
	}
	return nil
}
