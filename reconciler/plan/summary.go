package plan

// Summary counts a plan.
type Summary struct {
	Instances int // entries in the plan
	Create    int
	Update    int
	Delete    int
	Unchanged int
	Held      int
	Denied    int // instances a policy denies
	Warnings  int // warn messages, fleet-scope included
	Errors    int // problems
}

// Changed is how many instances the plan creates, updates or deletes.
func (s Summary) Changed() int { return s.Create + s.Update + s.Delete }

// Summary counts the plan.
func (p *Plan) Summary() Summary {
	s := Summary{Instances: len(p.Instances), Errors: len(p.Problems), Warnings: len(p.Fleet.Warn)}
	for i := range p.Instances {
		in := &p.Instances[i]
		switch {
		case in.Held != "":
			s.Held++
		case in.Change == Create:
			s.Create++
		case in.Change == Update:
			s.Update++
		case in.Change == Delete:
			s.Delete++
		default:
			s.Unchanged++
		}
		if in.Denied() {
			s.Denied++
		}
		s.Warnings += len(in.Policy.Warn)
	}
	return s
}

// Exit codes of `reconciler diff`, part of the command-line contract.
const (
	ExitClean   = 0 // nothing to change, nothing denied
	ExitError   = 1 // an input error: a broken file, a policy that does not compile
	ExitChanges = 2 // changes to make
	ExitDenied  = 3 // a policy denies
)

// ExitCode is the diff exit code for the plan: the first of error, denied
// and changes that applies.
func (p *Plan) ExitCode() int {
	s := p.Summary()
	switch {
	case s.Errors > 0:
		return ExitError
	case s.Denied > 0 || len(p.Fleet.Deny) > 0:
		return ExitDenied
	case s.Changed() > 0:
		return ExitChanges
	}
	return ExitClean
}
