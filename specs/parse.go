package specs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest instance file Parse reads. Instance files are
// small; a larger one is almost certainly a mistake (a dump committed to the
// wrong directory) and would slow every run.
const MaxFileSize = 1 << 20

// Parse reads the instance documents of one file. file is the path shown in
// errors and recorded in Instance.File. Defaults fill what the documents
// leave out.
//
// A file is valid or broken as a whole: Parse returns either every instance
// of the file and a nil error, or no instance and an ErrorList holding every
// problem it found (not only the first). Empty documents are skipped.
func Parse(file string, data []byte, d Defaults) ([]*Instance, error) {
	if len(data) > MaxFileSize {
		return nil, ErrorList{{File: file,
			Message: fmt.Sprintf("file is %d bytes; instance files are limited to %d", len(data), MaxFileSize),
			Fix:     "keep only instance documents in it, or split it into several files"}}
	}
	p := &parser{file: file}
	var out []*Instance
	names := map[string]int{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.errs = append(p.errs, syntaxError(file, data, err))
			break
		}
		in := p.document(&doc, d)
		if in == nil {
			continue
		}
		if first, dup := names[in.Metadata.Name]; dup {
			p.errs = append(p.errs, &Error{File: file, Line: in.Line, Field: "metadata.name",
				Message: fmt.Sprintf("instance %q is defined twice in this file (first on line %d)", in.Metadata.Name, first),
				Fix:     "names must be unique in the fleet: remove or rename one document"})
			continue
		}
		names[in.Metadata.Name] = in.Line
		out = append(out, in)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return out, nil
}

type parser struct {
	file string
	errs ErrorList
}

func (p *parser) fail(n *yaml.Node, path, msg, fix string) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Column: n.Column, Field: path, Message: msg, Fix: fix})
}

// document checks one document against the schema and builds its Instance,
// or returns nil after recording why it cannot.
func (p *parser) document(doc *yaml.Node, d Defaults) *Instance {
	if len(doc.Content) == 0 {
		return nil
	}
	n := deref(doc.Content[0])
	if n.ShortTag() == "!!null" {
		return nil // "---" followed by nothing, or only comments
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "", fmt.Sprintf("a document must be an Instance mapping, found %s", describe(n)),
			"start the document with apiVersion: reconciler/v1 and kind: Instance")
		return nil
	}
	before := len(p.errs)
	raw := p.value(n, schema, "")
	if len(p.errs) > before {
		return nil
	}
	in := fromRaw(raw.(map[string]any))
	in.File, in.Line = p.file, n.Line
	tls, _ := mapAt(in.Raw, "spec", "tls")
	d.apply(in, tls)
	if in.SSLEnabled() && in.Spec.TLS.Provider == ProviderNone {
		p.fail(n, "spec.tls.provider", `provider "none" issues no certificate, but spec.ssl is enabled`,
			"set spec.ssl: disabled, or choose a provider that issues certificates (vault, local, inline, href)")
		return nil
	}
	return in
}

// value checks n against f and returns n as policies see it: maps, []any,
// strings and bools. Problems are recorded, and the value returned is then
// meaningless.
func (p *parser) value(n *yaml.Node, f *field, path string) any {
	n = deref(n)
	switch f.kind {
	case kindObject:
		return p.object(n, f, path)
	case kindBool:
		if n.ShortTag() != "!!bool" {
			p.fail(n, path, fmt.Sprintf("must be true or false, not %s", describe(n)), fmt.Sprintf("write %s: true or %s: false", f.name, f.name))
			return nil
		}
		v, _ := strconv.ParseBool(strings.ToLower(n.Value))
		return v
	case kindStringList:
		return p.stringList(n, f, path)
	case kindStringMap:
		return p.stringMap(n, f, path)
	}
	if !p.isString(n, f, path) {
		return nil
	}
	p.checkString(n, f, path, n.Value)
	return n.Value
}

func (p *parser) object(n *yaml.Node, f *field, path string) map[string]any {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, fmt.Sprintf("must be a mapping, not %s", describe(n)), fmt.Sprintf("write it as %s: %s", f.name, f.example))
		return nil
	}
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		name := k.Value
		at := join(path, name)
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			p.fail(k, path, fmt.Sprintf("%s cannot be a key here", describe(k)), "write each field out; merge keys (<<) and complex keys are not supported")
			continue
		}
		if first, dup := seen[name]; dup {
			p.fail(k, at, fmt.Sprintf("duplicate key (first set on line %d)", first), "keep only one of them")
			continue
		}
		seen[name] = k.Line
		c := f.child(name)
		if c == nil {
			p.unknown(k, f, path)
			continue
		}
		if deref(v).ShortTag() == "!!null" && !c.required {
			out[name] = nil // an empty optional field, such as "labels:"
			continue
		}
		out[name] = p.value(v, c, at)
	}
	for _, c := range f.fields {
		if _, ok := out[c.name]; c.required && !ok {
			p.missing(n, c, path)
		}
	}
	return out
}

func (p *parser) stringList(n *yaml.Node, f *field, path string) []any {
	if n.Kind != yaml.SequenceNode {
		fix := fmt.Sprintf("write it as a list: %s: %s", f.name, f.example)
		if n.ShortTag() == "!!str" {
			fix = fmt.Sprintf("write it as a list: %s: [%s]", f.name, n.Value)
		}
		p.fail(n, path, fmt.Sprintf("must be a list, not %s", describe(n)), fix)
		return nil
	}
	if len(n.Content) == 0 && f.required {
		p.fail(n, path, "must not be empty", fmt.Sprintf("list at least one entry: %s: %s", f.name, f.example))
	}
	out := make([]any, 0, len(n.Content))
	seen := map[string]int{}
	for i, item := range n.Content {
		item = deref(item)
		at := fmt.Sprintf("%s[%d]", path, i)
		if !p.isString(item, f, at) {
			continue
		}
		if first, dup := seen[item.Value]; dup {
			p.fail(item, at, fmt.Sprintf("%q is listed twice (first on line %d)", item.Value, first), "remove the repeated entry")
			continue
		}
		seen[item.Value] = item.Line
		p.checkString(item, f, at, item.Value)
		out = append(out, item.Value)
	}
	return out
}

func (p *parser) stringMap(n *yaml.Node, f *field, path string) map[string]any {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, fmt.Sprintf("must be a mapping of strings, not %s", describe(n)), fmt.Sprintf("write it as %s: {key: value}", f.name))
		return nil
	}
	out := make(map[string]any, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		at := join(path, k.Value)
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			p.fail(k, path, fmt.Sprintf("%s cannot be a key here", describe(k)), "use plain string keys")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.fail(k, at, fmt.Sprintf("duplicate key (first set on line %d)", first), "keep only one of them")
			continue
		}
		seen[k.Value] = k.Line
		if f.checkKey != nil {
			if problem, fix := f.checkKey(k.Value); problem != "" {
				p.fail(k, at, problem, fix)
				continue
			}
		}
		if v.Kind != yaml.ScalarNode || !isStringTag(v) {
			fix := "write a string value"
			if v.Kind == yaml.ScalarNode {
				fix = fmt.Sprintf("quote it: %s: %q", k.Value, v.Value)
			}
			p.fail(v, at, fmt.Sprintf("values must be strings, not %s", describe(v)), fix)
			continue
		}
		if f.check != nil {
			if problem, fix := f.check(v.Value); problem != "" {
				p.fail(v, at, problem, fix)
				continue
			}
		}
		out[k.Value] = v.Value
	}
	return out
}

// isString reports whether n is a string scalar, recording a problem that
// says how to write it as one when it is not.
func (p *parser) isString(n *yaml.Node, f *field, path string) bool {
	if n.Kind == yaml.ScalarNode && isStringTag(n) {
		return true
	}
	name := f.name
	if f.kind == kindStringList {
		name = "- "
	} else {
		name += ": "
	}
	var fix string
	switch {
	case n.ShortTag() == "!!bool" && slices.Equal(f.enum, toggle):
		want := Disabled
		if v, _ := strconv.ParseBool(strings.ToLower(n.Value)); v {
			want = Enabled
		}
		fix = fmt.Sprintf("write %s%s (YAML reads %s as a boolean)", name, want, n.Value)
	case n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null":
		fix = fmt.Sprintf("quote it: %s%q", name, n.Value)
	case len(f.enum) > 0:
		fix = "write one of: " + strings.Join(f.enum, ", ")
	case f.example != "":
		fix = fmt.Sprintf("write a string, such as %s%s", name, f.example)
	default:
		fix = "write a string"
	}
	p.fail(n, path, fmt.Sprintf("must be a string, not %s", describe(n)), fix)
	return false
}

func (p *parser) checkString(n *yaml.Node, f *field, path, v string) {
	if len(f.enum) > 0 && !slices.Contains(f.enum, v) {
		fix := "use one of: " + strings.Join(f.enum, ", ")
		if s := closest(v, f.enum); s != "" {
			fix = fmt.Sprintf("did you mean %q? %s", s, fix)
		}
		p.fail(n, path, fmt.Sprintf("%q is not a valid value", v), fix)
		return
	}
	if f.check != nil {
		if problem, fix := f.check(v); problem != "" {
			p.fail(n, path, problem, fix)
		}
	}
}

func (p *parser) unknown(k *yaml.Node, f *field, path string) {
	name := k.Value
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	fix := "known fields " + where + " are: " + strings.Join(f.childNames(), ", ")
	if s := closest(name, f.childNames()); s != "" {
		fix = fmt.Sprintf("did you mean %q? %s", s, fix)
	} else if elsewhere := findField(schema, "", name); elsewhere != "" && elsewhere != join(path, name) {
		fix = fmt.Sprintf("%s belongs at %s: check its indentation", name, elsewhere)
	}
	p.fail(k, join(path, name), "unknown field", fix)
}

func (p *parser) missing(n *yaml.Node, c *field, path string) {
	example := c.example
	if example == "" && len(c.enum) > 0 {
		example = strings.Join(c.enum, " or ")
	}
	where := "at the top of the document"
	if path != "" {
		where = "under " + path
	}
	p.fail(n, join(path, c.name), "required field is missing", fmt.Sprintf("add %s: %s %s", c.name, example, where))
}

// findField returns the dotted path of the first field named name anywhere
// in the schema, or "".
func findField(f *field, path, name string) string {
	for _, c := range f.fields {
		if c.name == name {
			return join(path, name)
		}
		if p := findField(c, join(path, c.name), name); p != "" {
			return p
		}
	}
	return ""
}

// closest returns the candidate nearest to s when it is near enough to be
// a likely typo, or "".
func closest(s string, candidates []string) string {
	best, bestDist := "", len(s)/3+2
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if strings.HasPrefix(c, s) && len(s) >= 3 {
			return c // "postgres" for "postgresql"
		}
		if d := levenshtein.ComputeDistance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isStringTag(n *yaml.Node) bool { return n.ShortTag() == "!!str" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "an empty value"
	case "!!timestamp":
		return "the timestamp " + n.Value
	case "!!merge":
		return "a merge key (<<)"
	}
	return fmt.Sprintf("a value tagged %s", n.ShortTag())
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxHints explains the YAML parser's terse messages.
var syntaxHints = []struct{ problem, fix string }{
	{"mapping values are not allowed", "a key is indented deeper than its siblings, or a value contains \": \" and needs quotes"},
	{"did not find expected key", "check the indentation: the keys of one mapping must start in the same column"},
	{"did not find expected '-' indicator", "check the indentation: the items of one list must start in the same column"},
	{"block sequence entries are not allowed", "a list item is on the same line as its key or indented wrongly: put \"- item\" on its own line"},
	{"could not find expected ':'", "a key is missing its \":\", or a multi-line value needs quotes"},
	{"found character that cannot start any token", "a value starts with a reserved character (@, `, %): quote it"},
	{"found undefined alias", "define the anchor (&name) before using it (*name)"},
	{"did not find expected node content", "a list or mapping is not closed, or a value is missing"},
}

// syntaxError turns a YAML parser error into an Error at the right line,
// blaming a tab in the indentation where there is one: YAML forbids them and
// the parser's own message does not say so.
func syntaxError(file string, data []byte, err error) *Error {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{File: file, Message: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Fix: "check the YAML syntax"}
	}
	line, _ := strconv.Atoi(m[1])
	for i, l := range bytes.SplitN(data, []byte("\n"), line+1) {
		if i >= line {
			break
		}
		indent := l[:len(l)-len(bytes.TrimLeft(l, " \t"))]
		if col := bytes.IndexByte(indent, '\t'); col >= 0 {
			return &Error{File: file, Line: i + 1, Column: col + 1,
				Message: "tab character in indentation", Fix: "YAML indents with spaces only: replace the tab with spaces"}
		}
	}
	fix := "check the YAML syntax on this line and the one before it"
	for _, h := range syntaxHints {
		if strings.Contains(m[2], h.problem) {
			fix = h.fix
			break
		}
	}
	return &Error{File: file, Line: line, Message: "invalid YAML: " + m[2], Fix: fix}
}

// fromRaw builds the typed instance of a document the schema accepted.
func fromRaw(raw map[string]any) *Instance {
	in := &Instance{Raw: raw}
	meta, _ := raw["metadata"].(map[string]any)
	in.Metadata.Name, _ = meta["name"].(string)
	in.Metadata.Labels = stringMap(meta["labels"])
	in.Metadata.Annotations = stringMap(meta["annotations"])
	spec, _ := raw["spec"].(map[string]any)
	ds, _ := spec["datastore"].(map[string]any)
	in.Spec.Datastore.Type, _ = ds["type"].(string)
	in.Spec.Datastore.Version, _ = ds["version"].(string)
	hosts, _ := spec["hosts"].([]any)
	for _, h := range hosts {
		in.Spec.Hosts = append(in.Spec.Hosts, h.(string))
	}
	in.Spec.SSL, _ = spec["ssl"].(string)
	in.Spec.RPCEncryption, _ = spec["rpcEncryption"].(string)
	tls, _ := spec["tls"].(map[string]any)
	if ttl, ok := tls["ttl"].(string); ok {
		in.Spec.TLS.TTL, _ = time.ParseDuration(ttl)
	}
	in.Spec.TLS.MinVersion, _ = tls["minVersion"].(string)
	in.Spec.TLS.RequireSecureTransport, _ = tls["requireSecureTransport"].(bool)
	in.Spec.TLS.KeyType, _ = tls["keyType"].(string)
	in.Spec.TLS.Provider, _ = tls["provider"].(string)
	return in
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k], _ = v.(string)
	}
	return out
}

// mapAt walks nested maps of a raw document.
func mapAt(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}
