package policy

import (
	"log/slog"
	"regexp"
	"runtime"
	"time"
)

// DefaultNamespace is the package evaluated per instance when no namespace
// is requested, as in conftest.
const DefaultNamespace = "main"

// DefaultFleetNamespace is the package evaluated once over the whole fleet.
const DefaultFleetNamespace = "fleet"

// Option configures Load.
type Option interface {
	applyEngine(*engineConfig)
}

// TestOption configures Test.
type TestOption interface {
	applyTest(*testConfig)
}

// SharedOption configures both Load and Test.
type SharedOption interface {
	Option
	TestOption
}

// shared holds what Load and Test share.
type shared struct {
	parallelism   int
	log           *slog.Logger
	builtinErrors bool
}

func defaultShared() shared {
	return shared{parallelism: runtime.GOMAXPROCS(0), log: slog.New(slog.DiscardHandler)}
}

type engineConfig struct {
	shared
	namespaces     []string
	allNamespaces  bool
	fleetNamespace string
}

type testConfig struct {
	shared
	run     *regexp.Regexp
	timeout time.Duration
}

type engineOption func(*engineConfig)

func (f engineOption) applyEngine(c *engineConfig) { f(c) }

type testOption func(*testConfig)

func (f testOption) applyTest(c *testConfig) { f(c) }

type sharedOption func(*shared)

func (f sharedOption) applyEngine(c *engineConfig) { f(&c.shared) }
func (f sharedOption) applyTest(c *testConfig)     { f(&c.shared) }

// WithNamespaces adds packages to evaluate per instance, as conftest's
// repeatable --namespace: each pattern is a package name ("main",
// "k8s.simple") or a glob matched with path.Match ("k8s.*", "*"), where a
// dot is an ordinary character. Without it, DefaultNamespace is evaluated.
func WithNamespaces(patterns ...string) Option {
	return engineOption(func(c *engineConfig) { c.namespaces = append(c.namespaces, patterns...) })
}

// WithAllNamespaces evaluates every package that has deny, violation or
// warn rules, as conftest's --all-namespaces (the fleet namespace excepted).
func WithAllNamespaces() Option {
	return engineOption(func(c *engineConfig) { c.allNamespaces = true })
}

// WithFleetNamespace sets the package evaluated once over the whole fleet
// (DefaultFleetNamespace otherwise).
func WithFleetNamespace(namespace string) Option {
	return engineOption(func(c *engineConfig) { c.fleetNamespace = namespace })
}

// WithParallelism sets how many documents, or tests, are evaluated at once
// (GOMAXPROCS otherwise). Values below 1 keep the default.
func WithParallelism(n int) SharedOption {
	return sharedOption(func(c *shared) {
		if n > 0 {
			c.parallelism = n
		}
	})
}

// WithLogger sets the logger for load and evaluation summaries and, at
// debug level, the output of Rego print() calls. A nil logger discards.
func WithLogger(log *slog.Logger) SharedOption {
	return sharedOption(func(c *shared) {
		if log != nil {
			c.log = log
		}
	})
}

// WithBuiltinErrors makes a failing builtin function (to_number("x"),
// a malformed regex, ...) an evaluation error, as conftest's
// --show-builtin-errors. By default, as in conftest and OPA, such a call is
// merely undefined, which can make a deny rule silently not fire.
func WithBuiltinErrors() SharedOption {
	return sharedOption(func(c *shared) { c.builtinErrors = true })
}

// WithRunFilter runs only the tests whose fully qualified name
// ("data.main.test_deny_plaintext") matches re, as `opa test --run`.
func WithRunFilter(re *regexp.Regexp) TestOption {
	return testOption(func(c *testConfig) { c.run = re })
}

// WithTestTimeout bounds each test's evaluation (5s otherwise, as OPA).
func WithTestTimeout(d time.Duration) TestOption {
	return testOption(func(c *testConfig) {
		if d > 0 {
			c.timeout = d
		}
	})
}
