// Package specs is the desired state of one database instance: the
// Instance document of the fleet repository, its schema, its defaults and
// its strict parser.
//
// Parse reads one file of one or more YAML documents; Load reads every
// instance file under a directory of an fs.FS in parallel and checks names
// across files. Both report problems as *Error values that carry the file,
// line, column and dotted field path, and say how to fix the problem.
//
// Two things newcomers get wrong:
//
//   - A file is the unit of failure. One bad document makes its whole file
//     broken: none of the file's instances is returned, so callers hold
//     them at their last applied state instead of half-applying the file.
//   - Instance.Raw is the document exactly as written, without defaults:
//     it is what policies see (the conftest convention). Everything else in
//     Instance has the Defaults applied, so two documents that differ only
//     by spelling a default out compare equal.
//
// The schema in schema.go is the single source of truth: the parser walks
// it, and the JSON Schema served by `reconciler schema` is generated from
// it, so the two cannot disagree.
package specs
