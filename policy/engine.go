package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// Engine evaluates compiled policies. It is safe for concurrent use.
type Engine struct {
	namespaces    []*namespace // per-instance, sorted by name
	fleet         *namespace   // nil when the fleet namespace has no rules
	parallelism   int
	builtinErrors bool
	print         bool // Rego print() output goes to the debug log
	log           *slog.Logger
}

// namespace is one package's deny, violation and warn rules with the one
// prepared query that fetches all their values and the package's
// exception rule at once.
type namespace struct {
	name  string
	rules []string
	query rego.PreparedEvalQuery
}

// Load reads, parses and compiles every policy under dir in fsys (Rego v1,
// with the JSON and YAML data documents beside them as data), selects the
// namespaces to evaluate and prepares their queries, once.
//
// An unusable policy is an *Error that lists every problem with its file
// and line; a directory without policies is ErrNoPolicies; a requested
// namespace that matches no package with rules is ErrNoNamespace.
func Load(ctx context.Context, fsys fs.FS, dir string, opts ...Option) (*Engine, error) {
	start := time.Now()
	c := engineConfig{shared: defaultShared(), fleetNamespace: DefaultFleetNamespace}
	for _, o := range opts {
		o.applyEngine(&c)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	files, err := readPolicies(fsys, dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		parallelism:   c.parallelism,
		builtinErrors: c.builtinErrors,
		print:         c.log.Enabled(ctx, slog.LevelDebug),
		log:           c.log,
	}
	compiler, err := compile(files.modules, e.print)
	if err != nil {
		return nil, err
	}

	rules := reportedRules(files.modules)
	selected, err := selectNamespaces(rules, &c)
	if err != nil {
		return nil, err
	}
	if len(selected) == 0 && len(rules[c.fleetNamespace]) == 0 {
		return nil, fmt.Errorf("%w: no package has deny, violation or warn rules", ErrNoNamespace)
	}
	for _, ns := range selected {
		n, err := prepare(ctx, compiler, files.store, ns, rules[ns])
		if err != nil {
			return nil, err
		}
		e.namespaces = append(e.namespaces, n)
	}
	if names := rules[c.fleetNamespace]; len(names) > 0 {
		if e.fleet, err = prepare(ctx, compiler, files.store, c.fleetNamespace, names); err != nil {
			return nil, err
		}
	}
	e.log.InfoContext(ctx, "loaded policies", "dir", dir, "modules", len(files.modules),
		"namespaces", strings.Join(e.Namespaces(), ","), "fleet", e.fleet != nil, "duration", time.Since(start))
	return e, nil
}

// prepare builds the namespace's query:
//
//	r0 := [x | x := data.main.deny]; r1 := [x | x := data.main.warn]; ex := [x | x := data.main.exception]
//
// Each rule is wrapped in a comprehension so that an undefined rule (one
// whose bodies all failed) yields an empty array instead of making the
// whole query undefined.
func prepare(ctx context.Context, c *ast.Compiler, store storage.Store, ns string, rules []string) (*namespace, error) {
	var q strings.Builder
	for i, r := range rules {
		fmt.Fprintf(&q, "r%d := [x | x := data.%s.%s]; ", i, ns, r)
	}
	fmt.Fprintf(&q, "ex := [x | x := data.%s.exception]", ns)
	body, err := ast.ParseBodyWithOpts(q.String(), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("prepare query for namespace %s: %w", ns, err)
	}
	pq, err := rego.New(
		rego.Compiler(c),
		rego.Store(store),
		rego.ParsedQuery(body),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare query for namespace %s: %w", ns, err)
	}
	return &namespace{name: ns, rules: rules, query: pq}, nil
}

// Namespaces returns the namespaces evaluated per instance, sorted.
func (e *Engine) Namespaces() []string {
	names := make([]string, len(e.namespaces))
	for i, n := range e.namespaces {
		names[i] = n.name
	}
	return names
}

// Evaluate evaluates every document against the selected namespaces, in
// parallel, and the fleet namespace once over all of them. Result.Instances
// has one verdict per document, at the document's index.
//
// A failure to evaluate is an *EvalError; when several documents fail, the
// first in docs order is returned.
func (e *Engine) Evaluate(ctx context.Context, docs []Document) (*Result, error) {
	start := time.Now()
	res := &Result{Instances: make([]Verdict, len(docs))}
	var inputs []ast.Value // kept only for the fleet scope: they are large
	if e.fleet != nil {
		inputs = make([]ast.Value, len(docs))
	}
	if err := e.evaluateInstances(ctx, docs, inputs, res.Instances); err != nil {
		return nil, err
	}
	if e.fleet != nil {
		if err := e.evaluateFleet(ctx, docs, inputs, res); err != nil {
			return nil, err
		}
	}
	denied := 0
	for i := range res.Instances {
		res.Instances[i].sort()
		if res.Instances[i].Denied() {
			denied++
		}
	}
	res.Fleet.sort()
	e.log.DebugContext(ctx, "evaluated policies", "documents", len(docs), "denied", denied,
		"fleet_denied", len(res.Fleet.Deny), "duration", time.Since(start))
	return res, nil
}

// evaluateInstances runs a bounded pool of workers that take documents in
// index order, convert their inputs (kept in inputs, when it is not nil,
// for the fleet scope) and evaluate them. After a failure no further document is taken, but every
// document before it has been taken already and runs to completion, so
// the first failure in docs order is always the one reported.
func (e *Engine) evaluateInstances(ctx context.Context, docs []Document, inputs []ast.Value, out []Verdict) error {
	errs := make([]error, len(docs))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(e.parallelism, len(docs)) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(docs) {
					return
				}
				in, err := inputValue(docs[i])
				if err != nil {
					err = &EvalError{Name: docs[i].Name, File: docs[i].File, Err: err}
				} else {
					if inputs != nil {
						inputs[i] = in
					}
					out[i], err = e.evaluateDocument(ctx, docs[i], in)
				}
				if err != nil {
					errs[i] = err
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("evaluate policies: %w", err)
	}
	return firstError(errs)
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) evaluateDocument(ctx context.Context, doc Document, input ast.Value) (Verdict, error) {
	var v Verdict
	for _, n := range e.namespaces {
		nv, err := e.eval(ctx, n, input, doc.File)
		if err != nil {
			return Verdict{}, &EvalError{Namespace: n.name, Name: doc.Name, File: doc.File, Err: err}
		}
		v.append(nv)
	}
	return v, nil
}

// eval evaluates one namespace's query with input and applies exceptions
// as conftest does: a rule named by an exception contributes none of its
// results, and each solution of the exception query is reported instead,
// whether the rule fired or not.
func (e *Engine) eval(ctx context.Context, n *namespace, input ast.Value, file string) (Verdict, error) {
	if err := ctx.Err(); err != nil {
		return Verdict{}, err
	}
	opts := []rego.EvalOption{rego.EvalParsedInput(input)}
	var builtinErrs []topdown.Error
	if e.builtinErrors {
		opts = append(opts, rego.EvalBuiltinErrorList(&builtinErrs))
	}
	if e.print {
		opts = append(opts, rego.EvalPrintHook(printLog{ctx: ctx, log: e.log, namespace: n.name, file: file}))
	}
	rs, err := n.query.Eval(ctx, opts...)
	if err != nil {
		return Verdict{}, err
	}
	if len(builtinErrs) > 0 {
		errs := make([]error, len(builtinErrs))
		for i := range builtinErrs {
			errs[i] = &builtinErrs[i]
		}
		return Verdict{}, errors.Join(errs...)
	}
	if len(rs) != 1 {
		return Verdict{}, fmt.Errorf("policy query returned %d results, want 1", len(rs))
	}
	b := rs[0].Bindings
	exception := first(b["ex"])

	var v Verdict
	for i, rule := range n.rules {
		if k := countExceptions(exception, exceptionName(rule)); k > 0 {
			v.Exceptions = append(v.Exceptions, exceptionMessages(n.name, rule, k)...)
			continue
		}
		msgs, err := decodeRule(n.name, rule, first(b[bindingName(i)]))
		if err != nil {
			return Verdict{}, err
		}
		if ruleKind(rule) == failureRule {
			v.Deny = append(v.Deny, msgs...)
		} else {
			v.Warn = append(v.Warn, msgs...)
		}
	}
	return v, nil
}

// bindingNames avoids formatting "r0", "r1"... for every document.
var bindingNames = func() []string {
	names := make([]string, 64)
	for i := range names {
		names[i] = fmt.Sprintf("r%d", i)
	}
	return names
}()

func bindingName(i int) string {
	if i < len(bindingNames) {
		return bindingNames[i]
	}
	return fmt.Sprintf("r%d", i)
}

// first unwraps the [x | x := data.ns.rule] comprehension: empty when the
// rule is undefined, else the rule's value.
func first(v any) any {
	if a, ok := v.([]any); ok && len(a) > 0 {
		return a[0]
	}
	return nil
}

// printLog sends Rego print() output to the debug log.
type printLog struct {
	ctx       context.Context // the evaluation's, for when OPA passes none
	log       *slog.Logger
	namespace string
	file      string
}

func (p printLog) Print(pctx print.Context, msg string) error {
	ctx := pctx.Context
	if ctx == nil {
		ctx = p.ctx
	}
	p.log.DebugContext(ctx, "policy print", "namespace", p.namespace, "file", p.file,
		"location", pctx.Location.String(), "msg", msg)
	return nil
}

// HasFleetRules reports whether the fleet namespace has rules: then every
// verdict of the fleet scope depends on every document.
func (e *Engine) HasFleetRules() bool { return e.fleet != nil }
