// Package policy evaluates the fleet repository's Rego policies against
// instance documents and runs their unit tests.
//
// Policies live in a directory of the fleet repository (policies/ by
// default) and are read from the repository's fs.FS at the revision being
// reconciled, never from the reconciler's own disk. Load parses every
// .rego file under the directory as Rego v1, loads the .json, .yaml and
// .yml files beside them as data (a file's content lands under data at its
// directory's path, as OPA's loader and conftest's --data do), compiles
// once and prepares one query per namespace. Evaluate then takes the
// documents of one snapshot of the fleet, each as written in its file
// (specs.Instance.Raw, converted on the evaluating workers), and returns a Verdict per
// document; the reconciler leaves a denied instance at its last applied
// state. Test runs the *_test.rego files (`reconciler policy test`).
//
// # conftest conventions
//
// Existing conftest policies run unchanged, with the same results as
// `conftest test` (the conftestcompat build tag runs conftest v0.71.1 on
// the same cases to prove it):
//
//   - input is the document exactly as written, without defaults.
//   - Rules named ^(deny|violation)(_[a-zA-Z0-9]+)*$ are failures and
//     ^warn(_[a-zA-Z0-9]+)*$ warnings. Their value is a set (or array) of
//     strings, or of objects with a string "msg" whose other keys become
//     Message.Metadata and whose "_loc" becomes Message.Location.
//   - Package main is evaluated by default; WithNamespaces takes names and
//     path.Match globs as conftest's --namespace, WithAllNamespaces is
//     --all-namespaces.
//   - `exception contains ["ssl"] if {...}` excepts every result of the
//     rules whose name without its deny_, violation_ or warn_ prefix is
//     "ssl"; "" names the plain deny, violation and warn. As in conftest,
//     an exception is reported once per match, with the text of the query
//     that matched (data.main.exception[_][_] == "ssl"), whether or not the
//     excepted rule fired, and only within its own namespace.
//   - As in conftest and OPA, a builtin that fails (to_number("x")) is
//     undefined, not an error, unless WithBuiltinErrors is given
//     (--show-builtin-errors). A deny rule built on such a call can
//     silently not fire; policy tests are the guard against it.
//
// Where conftest would pass silently, this package fails loudly: a
// directory with no .rego file is ErrNoPolicies; a requested namespace
// that matches no package with rules is ErrNoNamespace; and a failure or
// warning rule written with "if" but without "contains" (`deny if {...}`,
// which conftest treats as a boolean that never denies, as well as
// `deny[msg] if {...}`, which conftest rejects) is a problem in the
// returned *Error. Every parse and compile problem is reported with its
// file and line, not only the first ten. Unlike conftest, policies see no
// data.conftest.file and opa.runtime() holds no environment variables:
// the reconciler's environment holds credentials that a policy from a
// merge request must not be able to print.
//
// # Fleet scope
//
// The fleet namespace (package fleet; WithFleetNamespace renames it) is
// evaluated once per Evaluate with input {"instances": [every document, in
// order]}, for rules across instances: "no two instances share a host",
// "95 % of production is encrypted". It has the same rule names and
// exceptions, and is never evaluated per instance, even with
// WithAllNamespaces.
//
// A fleet result object may name the instances it concerns, with
// "instance": "orders-db" or "instances": ["orders-db", "legacy-db"]. Such
// a message is put in the Verdict of every document of those names, so it
// denies (or warns about) each of them, and a merge request that creates
// the second instance on a host is denied at that instance. A message that
// names no instance, or only names no document has, is in Result.Fleet,
// as are fleet exceptions: they concern the fleet as a whole, and callers
// decide what a fleet-wide denial blocks. The keys stay in Metadata, as
// conftest would report them; a value of the wrong type is an EvalError
// rather than a message silently moved to the fleet.
//
// # Evaluation
//
// Each namespace has one prepared query that reads all its rules at once
// (r0 := [x | x := data.main.deny]; ...), so a document costs one
// evaluation per namespace; documents are evaluated by a bounded pool of
// workers (WithParallelism) and results keep the documents' order, each
// list sorted by namespace, rule and message. A runtime error, such as a
// complete rule with conflicting values, is an *EvalError naming the
// document's file; with several, the first in document order is returned.
// An Engine is immutable and safe for concurrent use: load one per policy
// revision and reuse it.
package policy
