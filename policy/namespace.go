package policy

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// conftest's rule-name conventions (policy/engine.go).
var (
	failureName = regexp.MustCompile(`^(deny|violation)(_[a-zA-Z0-9]+)*$`)
	warningName = regexp.MustCompile(`^warn(_[a-zA-Z0-9]+)*$`)
)

// kind is what a rule's messages mean, by the rule's name.
type kind int

const (
	otherRule kind = iota
	failureRule
	warningRule
)

func ruleKind(name string) kind {
	switch {
	case failureName.MatchString(name):
		return failureRule
	case warningName.MatchString(name):
		return warningRule
	}
	return otherRule
}

// reported reports whether the rule's messages are results.
func (k kind) reported() bool { return k != otherRule }

func (k kind) verb() string {
	if k == warningRule {
		return "warn"
	}
	return "deny"
}

// exceptionName is the name an exception rule uses for a rule: conftest
// strips the severity prefix, so "deny_ssl" is excepted by "ssl", and
// deny, violation and warn all by "". The prefixes are stripped one after
// the other, as conftest does.
func exceptionName(rule string) string {
	if rule == "deny" || rule == "violation" || rule == "warn" {
		return ""
	}
	for _, prefix := range []string{"violation_", "deny_", "warn_"} {
		rule = strings.TrimPrefix(rule, prefix)
	}
	return rule
}

// namespaceOf is conftest's name for a package: its path without "data.".
func namespaceOf(m *ast.Module) string {
	return strings.TrimPrefix(m.Package.Path.String(), "data.")
}

// reportedRules returns, for every namespace that has deny, violation or
// warn rules, their names, sorted. A rule defined by several bodies or in
// several files is listed once.
func reportedRules(modules map[string]*ast.Module) map[string][]string {
	rules := map[string][]string{}
	for _, m := range modules {
		ns := namespaceOf(m)
		for _, r := range m.Rules {
			name := r.Head.Name.String()
			if ruleKind(name).reported() && !slices.Contains(rules[ns], name) {
				rules[ns] = append(rules[ns], name)
			}
		}
	}
	for _, names := range rules {
		slices.Sort(names)
	}
	return rules
}

// selectNamespaces picks the namespaces to evaluate per instance among
// those with rules, as conftest's --namespace and --all-namespaces do,
// except that a pattern that matches nothing is an error: conftest would
// silently evaluate nothing. The implicit default namespace may be absent
// when fleet rules exist, so a fleet with only fleet-scope policies works.
func selectNamespaces(rules map[string][]string, c *engineConfig) ([]string, error) {
	available := slices.Sorted(maps.Keys(rules))
	available = slices.DeleteFunc(available, func(ns string) bool { return ns == c.fleetNamespace })
	if c.allNamespaces {
		return available, nil
	}
	patterns := c.namespaces
	implicit := len(patterns) == 0
	if implicit {
		patterns = []string{DefaultNamespace}
	}

	var selected []string
	for _, pattern := range patterns {
		matched := false
		for _, ns := range available {
			ok, err := matchNamespace(pattern, ns)
			if err != nil {
				return nil, err
			}
			if ok {
				matched = true
				if !slices.Contains(selected, ns) {
					selected = append(selected, ns)
				}
			}
		}
		if matched || implicit && len(rules[c.fleetNamespace]) > 0 {
			continue
		}
		return nil, noNamespace(pattern, available, c.fleetNamespace)
	}
	slices.Sort(selected)
	return selected, nil
}

// matchNamespace matches a namespace as conftest does: literally, or, for
// a pattern with a glob metacharacter (*, ?, [), with path.Match, where a
// dot is an ordinary character. The literal comparison comes first so that
// a quoted package name (x["y-z"]) can be requested as it is written.
func matchNamespace(pattern, ns string) (bool, error) {
	if pattern == ns || !strings.ContainsAny(pattern, "*?[") {
		return pattern == ns, nil
	}
	ok, err := path.Match(pattern, ns)
	if err != nil {
		return false, fmt.Errorf("match namespace pattern %q: %w", pattern, err)
	}
	return ok, nil
}

func noNamespace(pattern string, available []string, fleet string) error {
	var hint string
	switch {
	case pattern == fleet:
		hint = fmt.Sprintf("; %s is the fleet namespace, evaluated once over every instance without being requested", fleet)
	case len(available) == 0:
		hint = "; no package has deny, violation or warn rules"
	default:
		hint = "; namespaces with rules: " + strings.Join(available, ", ")
	}
	return fmt.Errorf("%w: %q matches no package with deny, violation or warn rules%s", ErrNoNamespace, pattern, hint)
}
