package output

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
)

// The JSON document is machine-read by CI: its field names are part of the
// command-line contract (PRODUCT.md), so they are spelled out here rather
// than taken from the plan's Go names. Top-level keys, in order: fleet,
// revision, base (when compared against one), summary, instances, policy
// (fleet-scope verdicts) and errors.
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
//
// A 10,000-instance plan is tens of megabytes of JSON, so instances are
// marshalled in parallel batches and streamed, instead of building the
// whole document in memory and indenting it again.
func JSON(w io.Writer, r Report) error {
	s := r.Plan.Summary()
	head := struct {
		Fleet    string      `json:"fleet"`
		Revision string      `json:"revision"`
		Base     string      `json:"base,omitempty"`
		Summary  jsonSummary `json:"summary"`
	}{r.Fleet, r.Revision, r.Base, jsonSummary{
		Instances: s.Instances, Changed: s.Changed(), Denied: s.Denied, Warnings: s.Warnings, Errors: s.Errors,
		Create: s.Create, Update: s.Update, Delete: s.Delete, Unchanged: s.Unchanged, Held: s.Held,
	}}
	errs := make([]jsonError, len(r.Plan.Problems))
	for i, p := range r.Plan.Problems {
		errs[i] = jsonError{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Message}
	}
	tail := struct {
		Policy jsonVerdict `json:"policy"`
		Errors []jsonError `json:"errors"`
	}{verdict(r.Plan.Fleet), errs}

	b := bufio.NewWriterSize(w, 64<<10)
	headJSON, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal plan: %w", err)
	}
	b.Write(headJSON[:len(headJSON)-2]) // reopen the object after summary
	b.WriteString(",\n  \"instances\": [")
	if err := writeInstances(b, r.Plan.Instances); err != nil {
		return err
	}
	if len(r.Plan.Instances) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("],\n")
	tailJSON, err := json.MarshalIndent(tail, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal plan: %w", err)
	}
	b.Write(tailJSON[2:]) // "{\n" dropped: the object is already open
	b.WriteByte('\n')
	return b.Flush()
}

// writeInstances marshals instances in parallel, a batch at a time so that
// memory stays bounded, and writes them in order.
func writeInstances(w *bufio.Writer, instances []plan.Instance) error {
	const batch = 512
	workers := runtime.GOMAXPROCS(0)
	out := make([][]byte, batch)
	for start := 0; start < len(instances); start += batch {
		part := instances[start:min(start+batch, len(instances))]
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for k := range workers {
			wg.Go(func() {
				for i := k; i < len(part); i += workers {
					out[i], errs[k] = json.MarshalIndent(jsonInstanceOf(&part[i]), "    ", "  ")
					if errs[k] != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("marshal plan: %w", err)
		}
		for i := range part {
			if start+i > 0 {
				w.WriteByte(',')
			}
			w.WriteString("\n    ")
			w.Write(out[i])
		}
	}
	return nil
}

func jsonInstanceOf(in *plan.Instance) jsonInstance {
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
	return ji
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
