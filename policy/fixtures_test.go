package policy

import (
	"context"
	"io/fs"
	"path"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// policyFS returns an fs.FS holding files (path → content) under
// policies/.
func policyFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[path.Join("policies", name)] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

// doc builds a document from a Rego/JSON object literal.
func doc(t testing.TB, name, file, literal string) Document {
	t.Helper()
	term, err := ast.ParseTerm(literal)
	if err != nil {
		t.Fatalf("parse %s: %v", literal, err)
	}
	return Document{Name: name, File: file, Input: term.Value}
}

// instance builds the smallest instance document that policies in these
// tests look at.
func instance(t testing.TB, name, env, ssl string) Document {
	t.Helper()
	return doc(t, name, "instances/"+name+".yaml",
		`{"metadata": {"name": "`+name+`", "labels": {"env": "`+env+`"}}, "spec": {"ssl": "`+ssl+`"}}`)
}

// readInstances reads every file under dir in fsys as one YAML document,
// as the specs package would hand them over, sorted by file name.
func readInstances(t testing.TB, fsys fs.FS, dir string) []Document {
	t.Helper()
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	var docs []Document
	for _, e := range entries {
		file := path.Join(dir, e.Name())
		bs, err := fs.ReadFile(fsys, file)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := util.Unmarshal(bs, &raw); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		name, _ := raw["metadata"].(map[string]any)["name"].(string)
		docs = append(docs, Document{Name: name, File: file, Input: raw})
	}
	return docs
}

func mustLoad(t testing.TB, fsys fs.FS, opts ...Option) *Engine {
	t.Helper()
	e, err := Load(context.Background(), fsys, "policies", opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

// msg is shorthand for an expected message without metadata.
func msg(ns, rule, text string) Message {
	return Message{Msg: text, Namespace: ns, Rule: rule}
}
