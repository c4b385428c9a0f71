package policy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Document is one instance document presented to policies.
type Document struct {
	// Name is the instance's metadata.name; fleet-scope messages name
	// instances by it.
	Name string
	// File is the fleet-relative path of the file the document came from,
	// for messages.
	File string
	// Input is the document exactly as written in the file, without
	// defaults (conftest's convention): an object, either as an ast.Value
	// or decoded (map[string]any of strings, numbers, bools, slices and
	// maps, as specs.Instance.Raw), which Evaluate converts on its workers.
	Input any
}

// inputValue converts a document's input to the value OPA evaluates.
func inputValue(d Document) (ast.Value, error) {
	switch in := d.Input.(type) {
	case nil:
		return nil, errors.New("document has no input")
	case ast.Value:
		return in, nil
	}
	v, err := ast.InterfaceToValue(d.Input)
	if err != nil {
		return nil, fmt.Errorf("convert %s to policy input: %w", d.File, err)
	}
	return v, nil
}

// Message is one result of a deny, violation, warn or exception rule.
type Message struct {
	// Msg is the message: the rule's string, or the "msg" key of its
	// object. For an exception it is conftest's text for it, the query that
	// matched: data.main.exception[_][_] == "ssl".
	Msg string `json:"msg"`
	// Namespace is the package of the rule ("main").
	Namespace string `json:"namespace"`
	// Rule is the rule's name ("deny_ssl_required"); for an exception, the
	// name of the rule it excepted.
	Rule string `json:"rule"`
	// Location is where the result says it originates, from the "_loc"
	// key of its object (conftest's convention), if any.
	Location *Location `json:"loc,omitempty"`
	// Metadata holds the other keys of an object result, decoded as JSON
	// (numbers are json.Number), as conftest reports them. conftest's
	// added "query" key is not repeated: Namespace and Rule say the same.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// Location is the origin a result claims with its "_loc" key.
type Location struct {
	File string      `json:"file,omitempty"`
	Line json.Number `json:"line,omitempty"`
}

// Verdict is what the policies say about one document (or, for
// Result.Fleet, about the fleet as a whole). Each list is sorted by
// namespace, rule, message and metadata, so verdicts compare and diff
// deterministically.
type Verdict struct {
	Deny       []Message `json:"deny,omitempty"`
	Warn       []Message `json:"warn,omitempty"`
	Exceptions []Message `json:"exceptions,omitempty"`
}

// Denied reports whether any failure rule fired.
func (v *Verdict) Denied() bool { return len(v.Deny) > 0 }

func (v *Verdict) append(o Verdict) {
	v.Deny = append(v.Deny, o.Deny...)
	v.Warn = append(v.Warn, o.Warn...)
	v.Exceptions = append(v.Exceptions, o.Exceptions...)
}

func (v *Verdict) sort() {
	for _, ms := range [][]Message{v.Deny, v.Warn, v.Exceptions} {
		slices.SortFunc(ms, compareMessages)
	}
}

func compareMessages(a, b Message) int {
	if c := cmp.Or(
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Rule, b.Rule),
		cmp.Compare(a.Msg, b.Msg),
	); c != 0 {
		return c
	}
	// Rare: two results that differ only beyond their message.
	return cmp.Compare(canonical(a.Location, a.Metadata), canonical(b.Location, b.Metadata))
}

func canonical(loc *Location, md map[string]any) string {
	bs, _ := json.Marshal([]any{loc, md}) // map keys are sorted by encoding/json
	return string(bs)
}

// Result is the outcome of evaluating the policies over the fleet.
type Result struct {
	// Instances has one verdict per document, at the document's index.
	// Fleet-scope messages that name an instance are included in its
	// verdict.
	Instances []Verdict
	// Fleet holds the fleet-scope messages that name no known instance,
	// and every fleet-scope exception.
	Fleet Verdict
}

// Denied reports whether any instance, or the fleet as a whole, is denied.
func (r *Result) Denied() bool {
	return r.Fleet.Denied() || slices.ContainsFunc(r.Instances, func(v Verdict) bool { return v.Denied() })
}

// decodeRule turns the value of a deny, violation or warn rule into
// messages, as conftest does: the value must be a set or an array (anything
// else, such as a boolean, holds no message); each element is a string, or
// an object whose "msg" is a string; elements of other types are ignored.
func decodeRule(ns, rule string, value any) ([]Message, error) {
	elems, _ := value.([]any)
	var msgs []Message
	for _, e := range elems {
		switch e := e.(type) {
		case string:
			msgs = append(msgs, Message{Msg: e, Namespace: ns, Rule: rule})
		case map[string]any:
			m, err := decodeObject(ns, rule, e)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

func decodeObject(ns, rule string, obj map[string]any) (Message, error) {
	msg, ok := obj["msg"].(string)
	if !ok {
		return Message{}, fmt.Errorf("rule %s.%s: result %s: %q must be present and a string", ns, rule, compact(obj), "msg")
	}
	m := Message{Msg: msg, Namespace: ns, Rule: rule, Location: decodeLocation(obj["_loc"])}
	for k, v := range obj {
		if k == "msg" || k == "_loc" {
			continue
		}
		if m.Metadata == nil {
			m.Metadata = make(map[string]any, len(obj)-1)
		}
		m.Metadata[k] = v
	}
	return m, nil
}

// decodeLocation reads conftest's "_loc": {"file": string, "line": number}.
func decodeLocation(v any) *Location {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var l Location
	l.File, _ = obj["file"].(string)
	l.Line, _ = obj["line"].(json.Number)
	if l.File == "" && l.Line == "" {
		return nil
	}
	return &l
}

func compact(v any) string {
	bs, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(bs)
}

// countExceptions counts the solutions of conftest's exception query,
// data.<ns>.exception[_][_] == name, over the value of the exception rule:
// one per element of each element that equals name.
func countExceptions(exception any, name string) int {
	n := 0
	for _, rules := range elements(exception) {
		for _, r := range elements(rules) {
			if s, ok := r.(string); ok && s == name {
				n++
			}
		}
	}
	return n
}

// elements is what x[_] iterates over: an array's or set's elements, an
// object's values; nothing for a scalar.
func elements(x any) []any {
	switch x := x.(type) {
	case []any:
		return x
	case map[string]any:
		return slices.Collect(maps.Values(x))
	}
	return nil
}

// exceptionMessages is what conftest reports for an excepted rule: one
// message per solution of the exception query, whose text is the query.
func exceptionMessages(ns, rule string, n int) []Message {
	q := "data." + ns + ".exception[_][_] == " + strconv.Quote(exceptionName(rule))
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Msg: q, Namespace: ns, Rule: rule}
	}
	return msgs
}
