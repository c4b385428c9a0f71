package output

import (
	"fmt"
	"strings"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
)

// group is a section of the human-readable outputs.
type group struct {
	title     string
	instances []*plan.Instance
}

// groups puts each instance worth showing into one section: denied first
// (they block the merge), then held, creates, updates, deletes and
// unchanged instances that draw warnings. Quiet unchanged instances only
// count in the summary.
func groups(p *plan.Plan) []group {
	gs := []group{{title: "Denied"}, {title: "Held"}, {title: "Create"}, {title: "Update"}, {title: "Delete"}, {title: "Warnings"}}
	for i := range p.Instances {
		in := &p.Instances[i]
		var g int
		switch {
		case in.Denied():
			g = 0
		case in.Held != "":
			g = 1
		case in.Change == plan.Create:
			g = 2
		case in.Change == plan.Update:
			g = 3
		case in.Change == plan.Delete:
			g = 4
		case len(in.Policy.Warn) > 0:
			g = 5
		default:
			continue
		}
		gs[g].instances = append(gs[g].instances, in)
	}
	out := gs[:0]
	for _, g := range gs {
		if len(g.instances) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// summaryLine is the one-line verdict shared by text and Markdown.
func summaryLine(s plan.Summary) string {
	parts := []string{
		fmt.Sprintf("%d to create", s.Create),
		fmt.Sprintf("%d to update", s.Update),
		fmt.Sprintf("%d to delete", s.Delete),
		fmt.Sprintf("%d unchanged", s.Unchanged),
	}
	if s.Held > 0 {
		parts = append(parts, fmt.Sprintf("%d held", s.Held))
	}
	line := strings.Join(parts, ", ")
	line += fmt.Sprintf("; %s, %s, %s", plural(s.Denied, "denied", "denied"), plural(s.Warnings, "warning", "warnings"), plural(s.Errors, "error", "errors"))
	return line
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ruleName is how a message's rule is shown: main.deny_ssl_required.
func ruleName(m policy.Message) string {
	return m.Namespace + "." + m.Rule
}

// formatValue shows a field value the way it would be written in YAML.
func formatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "(unset)"
	case []string:
		return "[" + strings.Join(v, ", ") + "]"
	case string:
		if v == "" {
			return `""`
		}
		return v
	}
	return fmt.Sprint(v)
}

// toggleState shows spec.ssl or spec.rpcEncryption, with its change.
func toggleState(in *plan.Instance, path string) string {
	for _, f := range in.Fields {
		if f.Path == path && f.From != nil && f.To != nil {
			return fmt.Sprintf("%s → %s", f.From, f.To)
		}
	}
	target := in.Desired
	if target == nil {
		target = in.Observed
	}
	if target == nil {
		return ""
	}
	if path == "spec.ssl" {
		return target.Spec.SSL
	}
	return target.Spec.RPCEncryption
}

func datastoreLabel(in *plan.Instance) string {
	target := in.Desired
	if target == nil {
		target = in.Observed
	}
	if target == nil || target.Spec.Datastore.Version == "" {
		return in.Datastore
	}
	return in.Datastore + " " + target.Spec.Datastore.Version
}

func joinActions(as []plan.Action, sep string) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, sep)
}

// shortRevision abbreviates a commit hash for people, as git does; JSON
// keeps the full hash.
func shortRevision(rev string) string {
	if len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == "" {
		return rev[:12]
	}
	return rev
}
