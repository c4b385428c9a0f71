// Package controller is the daemon's control loop: it reads the fleet
// from its source, plans with the same function `reconciler diff` uses
// (so a dry run never disagrees with a real one), and drives each
// instance, one worker at a time per instance and a bounded number at
// once, through its steps until its agent reports the desired state
// verified.
//
// The reconcile of one instance is an ordered list of named steps
// (reconcile in steps.go), each saying what it changes:
//
//   - hold: a broken file or a duplicate name keeps the instance at its
//     last applied state; a policy denial keeps it untouched.
//   - release: an instance whose file was deleted is left as it is and
//     reported (or, with Prune, has SSL removed and is forgotten).
//   - register: the instance's agent endpoint, with its keys.
//   - create-rpc-key: a new key is stored wrapped, then handed to the
//     agents' server, which delivers it at enrollment.
//   - confirm: the agent reported the generation published: the
//     certificate is installed (the one it replaced is revoked), or SSL is
//     off (its certificate is revoked), and the revision is applied.
//   - publish: a certificate is issued and stored (serial first), the
//     generation stored, then the desired state published to the agent.
//
// Writes that must not be lost happen before what depends on them: a
// wrapped key is committed before it is delivered, a serial before its
// certificate is installed, a generation before it is published. A
// daemon killed between two steps resumes from the store: an issued
// certificate never confirmed is revoked and reissued, never trusted.
//
// What newcomers get wrong: the private key of a certificate is never
// stored; it lives in memory from issue to confirmation, so a restart in
// between reissues. And coverage counts what agents verified over a
// sealed channel, never what was requested.
package controller
