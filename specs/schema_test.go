package specs

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("instance.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("instance.json")
	if err != nil {
		t.Fatalf("the generated schema does not compile: %v", err)
	}
	return s
}

// asJSON converts a YAML document to the JSON value a schema validator sees.
func asJSON(t *testing.T, doc string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaAgreesWithParser checks documents both ways: what the parser
// accepts the schema accepts, and what the schema rejects the parser
// rejects. (The parser is stricter: it also checks hosts and durations.)
func TestSchemaAgreesWithParser(t *testing.T) {
	s := compileSchema(t)
	docs := map[string]string{"valid": valid}
	for _, tt := range []struct{ name, from, to string }{
		{"unknown field", "ssl: enabled", "sll: enabled"},
		{"bad enum", "ssl: enabled", "ssl: on"},
		{"boolean toggle", "ssl: enabled", "ssl: true"},
		{"unknown datastore", "type: mysql", "type: oracle"},
		{"numeric version", `version: "8.0"`, "version: 8.0"},
		{"missing ssl", "  ssl: enabled\n", ""},
		{"bad name", "name: orders-db", "name: Orders"},
		{"empty hosts", "hosts: [orders-db.db.internal, 10.0.4.17]", "hosts: []"},
	} {
		docs[tt.name] = strings.Replace(valid, tt.from, tt.to, 1)
	}
	for name, doc := range docs {
		_, perr := Parse("f.yaml", []byte(doc), DefaultDefaults())
		serr := s.Validate(asJSON(t, doc))
		if (perr == nil) != (serr == nil) {
			t.Errorf("%s: parser error %v, schema error %v; they must agree", name, perr, serr)
		}
	}
}

func TestSchemaAcceptsExamples(t *testing.T) {
	s := compileSchema(t)
	root := "../examples/fleet/instances"
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			if err := s.Validate(asJSON(t, doc)); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
