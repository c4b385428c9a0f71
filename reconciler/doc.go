// Package reconciler ties the fleet's parts together: it reads the desired
// state from a source, judges it with the policies and plans it with
// package plan.
//
// Diff is the dry run behind `reconciler diff`. The daemon's live loop
// plans with the same plan.Compute, so a dry run and a real run agree.
package reconciler
