package policy

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTest(t *testing.T) {
	fsys := os.DirFS("testdata/unittests")
	const file = "policies/main_test.rego"
	all := []TestResult{
		{Package: "main", Name: "test_plaintext_production_is_denied", File: file, Line: 5, Status: TestPass},
		{Package: "main", Name: "test_known_team_reads_data", File: file, Line: 9, Status: TestPass},
		{
			Package: "main", Name: "test_wrong_expectation", File: file, Line: 13, Status: TestFail,
			Message: "policies/main_test.rego:15: count(deny) == 2 with input as plaintext_prod is false or undefined",
			Output:  "checking orders-db\n",
		},
		{
			Package: "main", Name: "test_conflicting_level", File: file, Line: 18, Status: TestError,
			Message: "policies/main.rego:16: eval_conflict_error: rule data.main.level produced conflicting values:\n" +
				"  \"high\" at policies/main.rego:14\n  \"low\" at policies/main.rego:16",
		},
		{Package: "main", Name: "todo_test_rpc_encryption", File: file, Line: 22, Status: TestSkip},
		{
			Package: "main", Name: "test_envs", File: file, Line: 26, Status: TestFail,
			Message: "policies/main_test.rego:28: count(deny) == 1 with input as {\"metadata\": {\"name\": \"x\", \"labels\": {\"env\": env}}, \"spec\": {\"ssl\": \"disabled\"}} is false or undefined; failing cases: staging",
		},
		{Package: "tls", Name: "test_always", File: "policies/tls/tls_test.rego", Line: 3, Status: TestPass},
	}
	tests := []struct {
		name string
		opts []TestOption
		want []TestResult
	}{
		{name: "every test, sorted by file and line", want: all},
		{
			name: "a run filter selects tests by qualified name",
			opts: []TestOption{WithRunFilter(regexp.MustCompile(`data\.main\.test_(plaintext|known)`)), WithParallelism(1)},
			want: all[:2],
		},
		{
			name: "a run filter on the package",
			opts: []TestOption{WithRunFilter(regexp.MustCompile(`^data\.tls\.`))},
			want: all[6:],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Test(context.Background(), fsys, "policies", tt.opts...)
			if err != nil {
				t.Fatalf("Test: %v", err)
			}
			for _, r := range got {
				if r.Status != TestSkip && r.Duration <= 0 {
					t.Errorf("%s: duration %v, want > 0", r.Name, r.Duration)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(TestResult{}, "Duration")); diff != "" {
				t.Errorf("Test() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTestBuiltinErrors(t *testing.T) {
	fsys := policyFS(map[string]string{
		"main.rego":      "package main\ndeny contains \"old\" if to_number(input.v) < 2\n",
		"main_test.rego": "package main\n\ntest_version if {\n\tcount(deny) == 0 with input as {\"v\": \"x\"}\n}\n",
	})
	tests := []struct {
		name string
		opts []TestOption
		want TestResult
	}{
		{
			name: "a failing builtin is undefined by default",
			want: TestResult{Package: "main", Name: "test_version", File: "policies/main_test.rego", Line: 3, Status: TestPass},
		},
		{
			name: "with builtin errors shown it is an error",
			opts: []TestOption{WithBuiltinErrors()},
			want: TestResult{
				Package: "main", Name: "test_version", File: "policies/main_test.rego", Line: 3, Status: TestError,
				Message: `policies/main.rego:2: eval_builtin_error: to_number: strconv.ParseFloat: parsing "x": invalid syntax`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Test(context.Background(), fsys, "policies", tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]TestResult{tt.want}, got, cmpopts.IgnoreFields(TestResult{}, "Duration")); diff != "" {
				t.Errorf("Test() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTestErrors(t *testing.T) {
	main := "package main\ndeny contains \"x\" if true\n"
	tests := []struct {
		name     string
		policies map[string]string
		opts     []TestOption
		is       error
		want     string
	}{
		{
			name:     "policies without tests are reported, not passed",
			policies: map[string]string{"main.rego": main},
			is:       ErrNoTests,
			want:     "no policy tests: no test_ rule under policies",
		},
		{
			name:     "a filter that matches no test is reported",
			policies: map[string]string{"main.rego": main, "main_test.rego": "package main\ntest_x if true\n"},
			opts:     []TestOption{WithRunFilter(regexp.MustCompile("nothing"))},
			is:       ErrNoTests,
			want:     `no policy tests: no test under policies matches "nothing"`,
		},
		{
			name:     "no policy files at all",
			policies: map[string]string{"data.json": "{}"},
			is:       ErrNoPolicies,
			want:     "no policies: no .rego file under policies",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Test(context.Background(), policyFS(tt.policies), "policies", tt.opts...)
			if !errors.Is(err, tt.is) {
				t.Fatalf("Test() = %v, %v; want errors.Is %v", got, err, tt.is)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTestTimeout(t *testing.T) {
	got, err := Test(context.Background(), policyFS(map[string]string{
		"main_test.rego": "package main\n\ntest_slow if {\n\tcount([x | some x in numbers.range(1, 100000000)]) > 0\n}\n",
	}), "policies", WithTestTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Status != TestError || !strings.Contains(got[0].Message, "eval_cancel_error") {
		t.Errorf("Test() = %+v, want one test in error for its timeout", got)
	}
}

func TestTestCompileErrorInTestFile(t *testing.T) {
	_, err := Test(context.Background(), policyFS(map[string]string{
		"main.rego":      "package main\ndeny contains \"x\" if true\n",
		"main_test.rego": "package main\n\ntest_typo if {\n\tcount(denny) == 1\n}\n",
	}), "policies")
	var got *Error
	if !errors.As(err, &got) {
		t.Fatalf("Test() error = %v, want *Error", err)
	}
	want := []Problem{{File: "policies/main_test.rego", Line: 4, Message: "rego_unsafe_var_error: var denny is unsafe"}}
	if diff := cmp.Diff(want, got.Problems); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
}

func TestTestResultString(t *testing.T) {
	r := TestResult{Package: "main", Name: "test_x", File: "policies/main_test.rego", Line: 3, Status: TestFail, Message: "why"}
	if diff := cmp.Diff("FAIL policies/main_test.rego:3: data.main.test_x: why", r.String()); diff != "" {
		t.Errorf("String() mismatch (-want +got):\n%s", diff)
	}
}
