package output

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/reconciler-dev/reconciler/reconciler/plan"
)

// Markdown writes the report as a merge-request comment: the verdict on
// top, a table of the instances that change or draw a verdict, problems,
// and the field changes folded away in a details block.
func Markdown(w io.Writer, r Report) error {
	b := bufio.NewWriter(w)
	p := r.Plan
	s := p.Summary()
	icon := "✅"
	switch p.ExitCode() {
	case plan.ExitError:
		icon = "🛑"
	case plan.ExitDenied:
		icon = "❌"
	case plan.ExitChanges:
		icon = "📝"
	}
	fmt.Fprintf(b, "### %s reconciler diff\n\n", icon)
	against := "an empty fleet"
	if r.Base != "" {
		against = "`" + shortRevision(r.Base) + "`"
	}
	fmt.Fprintf(b, "**%s.**\n\n`%s` at `%s` against %s.\n", capitalize(summaryLine(s)), r.Fleet, shortRevision(r.Revision), against)

	if len(p.Problems) > 0 {
		fmt.Fprintf(b, "\n#### Errors\n\n")
		for _, e := range p.Problems {
			fmt.Fprintf(b, "- `%s`: %s\n", position(e), cell(e.Message))
		}
	}

	var shown []*plan.Instance
	for _, g := range groups(p) {
		shown = append(shown, g.instances...)
	}
	if len(shown) > 0 {
		fmt.Fprintf(b, "\n| | Instance | Datastore | Change | SSL | RPC encryption | Actions | Policy |\n")
		fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|\n")
		for _, in := range shown {
			fmt.Fprintf(b, "| %s | `%s` | %s | %s | %s | %s | %s | %s |\n",
				mark(in), in.Name, cell(datastoreLabel(in)), change(in),
				cell(toggleState(in, "spec.ssl")), cell(toggleState(in, "spec.rpcEncryption")),
				cell(joinActions(in.Actions, ", ")), policyCell(in))
		}
	}
	if v := p.Fleet; len(v.Deny)+len(v.Warn) > 0 {
		fmt.Fprintf(b, "\n#### Fleet policy\n\n")
		for _, m := range v.Deny {
			fmt.Fprintf(b, "- ❌ %s (`%s`)\n", cell(m.Msg), ruleName(m))
		}
		for _, m := range v.Warn {
			fmt.Fprintf(b, "- ⚠️ %s (`%s`)\n", cell(m.Msg), ruleName(m))
		}
	}

	var changed []*plan.Instance
	for _, in := range shown {
		if len(in.Fields) > 0 && in.Change == plan.Update {
			changed = append(changed, in)
		}
	}
	if len(changed) > 0 {
		fmt.Fprintf(b, "\n<details><summary>Field changes (%d instances)</summary>\n\n", len(changed))
		for _, in := range changed {
			fmt.Fprintf(b, "**`%s`** (`%s`)\n\n| Field | From | To |\n|---|---|---|\n", in.Name, in.File)
			for _, f := range in.Fields {
				fmt.Fprintf(b, "| `%s` | %s | %s |\n", f.Path, cell(formatValue(f.From)), cell(formatValue(f.To)))
			}
			fmt.Fprintf(b, "\n")
		}
		fmt.Fprintf(b, "</details>\n")
	}
	return b.Flush()
}

func mark(in *plan.Instance) string {
	switch {
	case in.Denied():
		return "❌"
	case in.Held != "":
		return "⏸️"
	case len(in.Policy.Warn) > 0:
		return "⚠️"
	}
	return "✅"
}

func change(in *plan.Instance) string {
	if in.Held != "" {
		return "held: " + cell(in.Held)
	}
	return string(in.Change)
}

func policyCell(in *plan.Instance) string {
	var parts []string
	for _, m := range in.Policy.Deny {
		parts = append(parts, "deny: "+cell(m.Msg))
	}
	for _, m := range in.Policy.Warn {
		parts = append(parts, "warn: "+cell(m.Msg))
	}
	for _, m := range in.Policy.Exceptions {
		parts = append(parts, "excepted: `"+ruleName(m)+"`")
	}
	return strings.Join(parts, "<br>")
}

func position(p plan.Problem) string {
	s := p.File
	if p.Line > 0 {
		s += fmt.Sprintf(":%d", p.Line)
	}
	return s
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
