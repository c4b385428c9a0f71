// Package output renders a plan for people and machines: text for a
// terminal (grouped, coloured when asked), Markdown for a merge-request
// comment and JSON for CI, one file per format.
//
// Every renderer is deterministic: the same plan gives the same bytes, so
// the outputs are compared against golden files in the tests. Secret
// material never reaches a plan, so no renderer has to filter any.
package output

import "github.com/reconciler-dev/reconciler/reconciler/plan"

// Report is a plan with what it was computed from.
type Report struct {
	Plan *plan.Plan
	// Fleet names what was planned: a path or a URL.
	Fleet string
	// Revision is the desired state's revision ("worktree" for a
	// directory); Base is the revision compared against, "" for an empty
	// fleet.
	Revision string
	Base     string
}
