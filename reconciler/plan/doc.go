// Package plan decides what the reconciler would do: for every instance,
// the change between its observed and desired state, the changed fields,
// the ordered actions a real run takes and the policy verdicts.
//
// Compute is the only planner. `reconciler diff` calls it with the desired
// state at one revision and the observed state at another (or nothing); the
// daemon calls it with what its agents report. Because both go through the
// same function, a dry run cannot disagree with a real run.
//
// Two rules newcomers miss: a denied instance gets no actions at all (it
// stays at its last applied state), and an instance whose file is broken
// or whose name is defined twice is held, never planned as a delete.
package plan
