package output

import (
	"bufio"
	"fmt"
	"io"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
)

// ANSI styles; Text uses them only when asked to colour.
const (
	bold    = "\x1b[1m"
	dim     = "\x1b[2m"
	red     = "\x1b[31m"
	green   = "\x1b[32m"
	yellow  = "\x1b[33m"
	magenta = "\x1b[35m"
	reset   = "\x1b[0m"
)

type textWriter struct {
	w     *bufio.Writer
	color bool
}

func (t *textWriter) style(s, text string) string {
	if !t.color || text == "" {
		return text
	}
	return s + text + reset
}

func (t *textWriter) line(format string, args ...any) {
	fmt.Fprintf(t.w, format+"\n", args...)
}

// Text writes the report for a person at a terminal: problems, then the
// instances grouped by what happens to them, then the fleet-scope
// verdicts and a one-line summary. color adds ANSI colours.
func Text(w io.Writer, r Report, color bool) error {
	t := &textWriter{w: bufio.NewWriter(w), color: color}
	header := "reconciler diff " + r.Fleet + " at " + shortRevision(r.Revision)
	if r.Base != "" {
		header += " against " + shortRevision(r.Base)
	} else {
		header += " against an empty fleet"
	}
	t.line("%s", t.style(bold, header))

	if len(r.Plan.Problems) > 0 {
		t.line("")
		t.line("%s", t.style(bold+red, fmt.Sprintf("Errors (%d)", len(r.Plan.Problems))))
		for _, p := range r.Plan.Problems {
			t.line("  %s %s", t.style(red, "✗"), p)
		}
	}
	for _, g := range groups(r.Plan) {
		t.line("")
		t.line("%s", t.style(bold, fmt.Sprintf("%s (%d)", g.title, len(g.instances))))
		for _, in := range g.instances {
			t.instance(in)
		}
	}
	if v := r.Plan.Fleet; len(v.Deny)+len(v.Warn) > 0 {
		t.line("")
		t.line("%s", t.style(bold, "Fleet policy"))
		t.verdict(v, "  ")
	}
	t.line("")
	t.line("%s", t.style(bold, "Plan: "+summaryLine(r.Plan.Summary())+"."))
	return t.w.Flush()
}

func (t *textWriter) instance(in *plan.Instance) {
	mark, color := " ", ""
	switch {
	case in.Denied():
		mark, color = "✗", red
	case in.Held != "":
		mark, color = "!", magenta
	case in.Change == plan.Create:
		mark, color = "+", green
	case in.Change == plan.Update:
		mark, color = "~", yellow
	case in.Change == plan.Delete:
		mark, color = "-", red
	}
	t.line("  %s %s  %s  %s", t.style(color, mark), t.style(bold, in.Name), datastoreLabel(in), t.style(dim, in.File))
	if in.Held != "" {
		t.line("      held at its last applied state: %s", in.Held)
		return
	}
	if in.Change == plan.Create || in.Change == plan.Delete {
		t.line("      ssl %s · rpc encryption %s", toggleState(in, "spec.ssl"), toggleState(in, "spec.rpcEncryption"))
	} else {
		for _, f := range in.Fields {
			t.line("      %s: %s → %s", f.Path, t.style(red, formatValue(f.From)), t.style(green, formatValue(f.To)))
		}
	}
	if len(in.Actions) > 0 {
		t.line("      actions: %s", joinActions(in.Actions, " → "))
	} else if in.Denied() && in.Change != plan.None {
		t.line("      actions: none: a denied instance stays at its last applied state")
	}
	t.verdict(in.Policy, "      ")
}

func (t *textWriter) verdict(v policy.Verdict, indent string) {
	for _, m := range v.Deny {
		t.line("%s%s %s %s", indent, t.style(red, "deny"), m.Msg, t.style(dim, "("+ruleName(m)+")"))
	}
	for _, m := range v.Warn {
		t.line("%s%s %s %s", indent, t.style(yellow, "warn"), m.Msg, t.style(dim, "("+ruleName(m)+")"))
	}
	for _, m := range v.Exceptions {
		t.line("%s%s %s is excepted for this instance", indent, t.style(dim, "except"), ruleName(m))
	}
}
