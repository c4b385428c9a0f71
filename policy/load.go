package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
)

// policyFiles is a policy directory once parsed: its Rego modules and the
// store that holds the data documents beside them.
type policyFiles struct {
	modules map[string]*ast.Module
	store   storage.Store
}

// readPolicies parses every .rego file under dir with Rego v1 syntax and
// loads every .json, .yaml and .yml file under it as data, merged the way
// OPA's loader (and so conftest's --data) merges them: a file's content
// lands under data at the path of its directory relative to dir.
//
// Every file that cannot be read is reported, as an *Error; a directory
// without a .rego file is ErrNoPolicies.
func readPolicies(fsys fs.FS, dir string) (*policyFiles, error) {
	dir = path.Clean(dir)
	if !fs.ValidPath(dir) {
		return nil, fmt.Errorf("read policies: invalid directory %q: want a slash-separated path relative to the fleet root", dir)
	}
	var files []string
	rego := 0
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && loadable(p) {
			files = append(files, p)
			if path.Ext(p) == ".rego" {
				rego++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	if rego == 0 {
		return nil, fmt.Errorf("%w: no .rego file under %s", ErrNoPolicies, dir)
	}

	// The loader reads the tree again; the list above is only for naming
	// files in errors and for refusing an empty directory.
	res, err := loader.NewFileLoader().
		WithFS(fsys).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{dir}, func(p string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && !loadable(p)
		})
	if err != nil {
		if perr := newError(loadProblems(fsys, files, err)); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("load policies: %w", err)
	}
	store, err := res.Store()
	if err != nil {
		return nil, fmt.Errorf("store policy data: %w", err)
	}
	return &policyFiles{modules: res.ParsedModules(), store: store}, nil
}

// loadable reports whether the loader should read the file: policies and
// data documents, nothing else (READMEs, bundles, editor files).
func loadable(name string) bool {
	switch path.Ext(name) {
	case ".rego", ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// yamlLine finds the line in sigs.k8s.io/yaml's error text, the only place
// the loader keeps it.
var yamlLine = regexp.MustCompile(`yaml: line (\d+):`)

// loadProblems turns the loader's errors into problems that name their file
// and, where the error allows, their line.
func loadProblems(fsys fs.FS, files []string, err error) []Problem {
	var errs loader.Errors
	if !errors.As(err, &errs) {
		errs = loader.Errors{err}
	}
	// Longest first, so that a/b.json is not taken for a/b.js.
	slices.SortFunc(files, func(a, b string) int { return len(b) - len(a) })

	var problems []Problem
	for _, err := range errs {
		var astErr *ast.Error
		var pathErr *fs.PathError
		switch {
		case errors.As(err, &astErr):
			problems = append(problems, astProblem(astErr))
		case errors.As(err, &pathErr):
			problems = append(problems, Problem{File: pathErr.Path, Message: pathErr.Err.Error()})
		default:
			problems = append(problems, fileProblem(fsys, files, err))
		}
	}
	return problems
}

// fileProblem attributes a loader error that is only text ("path: ...") to
// its file.
func fileProblem(fsys fs.FS, files []string, err error) Problem {
	msg := err.Error()
	for _, f := range files {
		rest, ok := strings.CutPrefix(msg, f+": ")
		if !ok {
			continue
		}
		p := Problem{File: f, Message: rest}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			if bs, rerr := fs.ReadFile(fsys, f); rerr == nil {
				p.Line = 1 + bytes.Count(bs[:min(int(syntax.Offset), len(bs))], []byte("\n"))
			}
		} else if m := yamlLine.FindStringSubmatch(rest); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
		}
		return p
	}
	return Problem{Message: msg}
}

func astProblem(e *ast.Error) Problem {
	p := Problem{Message: e.Code + ": " + e.Message}
	if e.Location != nil {
		p.File = e.Location.File
		p.Line = e.Location.Row
	}
	return p
}

func astProblems(errs ast.Errors) []Problem {
	problems := make([]Problem, 0, len(errs))
	for _, e := range errs {
		problems = append(problems, astProblem(e))
	}
	return problems
}

// newCompiler returns a compiler that reports every error rather than
// stopping at OPA's default of ten.
func newCompiler(print bool) *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithEnablePrintStatements(print).
		SetErrorLimit(0)
}

// compile compiles the modules, reporting the compiler's errors together
// with the rules that use "if" without "contains".
func compile(modules map[string]*ast.Module, print bool) (*ast.Compiler, error) {
	problems := booleanRules(modules)
	c := newCompiler(print)
	c.Compile(modules)
	if c.Failed() {
		problems = append(problems, astProblems(c.Errors)...)
	}
	if err := newError(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// booleanRules finds deny, violation and warn rules written with "if" but
// without "contains" (`deny if {...}`, `deny[msg] if {...}`). Such a rule
// is a boolean, or an object of booleans, never a set of messages: conftest
// rejects the second form (its problematicIf) and silently passes the
// first; both are rejected here, as a policy that can never deny is worse
// than no policy.
func booleanRules(modules map[string]*ast.Module) []Problem {
	var problems []Problem
	for _, m := range modules {
		for _, r := range m.Rules {
			h := r.Head
			if h == nil || h.Value == nil || len(h.Reference) == 0 {
				continue
			}
			name, ok := h.Reference[0].Value.(ast.Var)
			if !ok || !ruleKind(string(name)).reported() || !h.Value.Equal(ast.BooleanTerm(true)) {
				continue
			}
			problems = append(problems, Problem{
				File: h.Location.File,
				Line: h.Location.Row,
				Message: fmt.Sprintf("rule %s uses \"if\" without \"contains\", so it produces no message and can never %s; write %q",
					h.Ref(), ruleKind(string(name)).verb(), string(name)+" contains msg if { ... }"),
			})
		}
	}
	return problems
}
