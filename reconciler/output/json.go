package output

import (
	"encoding/json"
	"io"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
)

// The JSON document is machine-read by CI: its field names are part of the
// command-line contract (PRODUCT.md), so they are spelled out here rather
// than taken from the plan's Go names.
type jsonReport struct {
	Fleet     string         `json:"fleet"`
	Revision  string         `json:"revision"`
	Base      string         `json:"base,omitempty"`
	Summary   jsonSummary    `json:"summary"`
	Instances []jsonInstance `json:"instances"`
	Policy    jsonVerdict    `json:"policy"`
	Errors    []jsonError    `json:"errors"`
}

type jsonSummary struct {
	Instances int `json:"instances"`
	Changed   int `json:"changed"`
	Denied    int `json:"denied"`
	Warnings  int `json:"warnings"`
	Errors    int `json:"errors"`
	Create    int `json:"create"`
	Update    int `json:"update"`
	Delete    int `json:"delete"`
	Unchanged int `json:"unchanged"`
	Held      int `json:"held"`
}

type jsonInstance struct {
	Name      string      `json:"name"`
	File      string      `json:"file"`
	Datastore string      `json:"datastore"`
	Change    plan.Change `json:"change"`
	Held      string      `json:"held,omitempty"`
	Fields    []jsonField `json:"fields"`
	Actions   []string    `json:"actions"`
	Policy    jsonVerdict `json:"policy"`
}

type jsonField struct {
	Path string `json:"path"`
	From any    `json:"from"`
	To   any    `json:"to"`
}

type jsonVerdict struct {
	Deny       []policy.Message `json:"deny"`
	Warn       []policy.Message `json:"warn"`
	Exceptions []policy.Message `json:"exceptions,omitempty"`
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// JSON writes the report as one indented JSON document. Lists are never
// null, so consumers can iterate without checks.
func JSON(w io.Writer, r Report) error {
	s := r.Plan.Summary()
	doc := jsonReport{
		Fleet:    r.Fleet,
		Revision: r.Revision,
		Base:     r.Base,
		Summary: jsonSummary{
			Instances: s.Instances, Changed: s.Changed(), Denied: s.Denied, Warnings: s.Warnings, Errors: s.Errors,
			Create: s.Create, Update: s.Update, Delete: s.Delete, Unchanged: s.Unchanged, Held: s.Held,
		},
		Instances: make([]jsonInstance, len(r.Plan.Instances)),
		Policy:    verdict(r.Plan.Fleet),
		Errors:    make([]jsonError, len(r.Plan.Problems)),
	}
	for i := range r.Plan.Instances {
		in := &r.Plan.Instances[i]
		ji := jsonInstance{
			Name: in.Name, File: in.File, Datastore: in.Datastore, Change: in.Change, Held: in.Held,
			Fields:  make([]jsonField, len(in.Fields)),
			Actions: make([]string, len(in.Actions)),
			Policy:  verdict(in.Policy),
		}
		for j, f := range in.Fields {
			ji.Fields[j] = jsonField{Path: f.Path, From: f.From, To: f.To}
		}
		for j, a := range in.Actions {
			ji.Actions[j] = string(a)
		}
		doc.Instances[i] = ji
	}
	for i, p := range r.Plan.Problems {
		doc.Errors[i] = jsonError{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Message}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

func verdict(v policy.Verdict) jsonVerdict {
	orEmpty := func(m []policy.Message) []policy.Message {
		if m == nil {
			return []policy.Message{}
		}
		return m
	}
	return jsonVerdict{Deny: orEmpty(v.Deny), Warn: orEmpty(v.Warn), Exceptions: v.Exceptions}
}
