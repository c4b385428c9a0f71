package specs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// SetSSL sets spec.ssl of the instance named name to enabled or disabled in
// src, the bytes of one instance file (one or more "---" documents), and
// returns the edited bytes. changed is false, and out is src, when the
// instance already has the value.
//
// The edit is a splice, never a re-encoding: the YAML parser only says
// where the value is, and exactly the bytes of that one scalar change.
// Comments, key order, indentation, quoting (ssl: "disabled" becomes
// ssl: "enabled"), line endings and flow maps (spec: {ssl: disabled, ...})
// are kept as written. When spec.ssl is absent, a line "ssl: VALUE" is
// added as the first entry of the spec block, at the block's indentation
// and with the file's line ending; in a flow map the entry is added after
// its opening brace. Before returning, SetSSL parses its output and checks
// that it holds the same documents with only spec.ssl changed, and that it
// is valid wherever src was.
//
// A value that cannot be edited in place (an alias, a block or multi-line
// scalar, an escaped quoted string) is refused rather than rewritten.
// Errors are *Error values, or an ErrorList when the edited document would
// be invalid (enabling SSL under provider "none"). They carry no File: the
// caller knows which file src is and sets it.
func SetSSL(src []byte, name string, enabled bool) (out []byte, changed bool, err error) {
	want := Disabled
	if enabled {
		want = Enabled
	}
	if err := editable(src); err != nil {
		return nil, false, err
	}
	docs, err := decodeDocuments(src)
	if err != nil {
		return nil, false, err
	}
	site, err := findSSL(docs, name)
	if err != nil {
		return nil, false, err
	}
	if v := site.value; v != nil && deref(v).Kind == yaml.ScalarNode && deref(v).ShortTag() == "!!str" && deref(v).Value == want {
		return src, false, nil
	}
	e := editor{src: src, lines: lineStarts(src), name: name}
	if site.value != nil {
		out, err = e.replace(site, want)
	} else {
		out, err = e.insert(site, want)
	}
	if err != nil {
		return nil, false, err
	}
	if err := verifyEdit(src, out, docs, site, want); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// editable refuses input whose byte offsets the parser's positions cannot
// be mapped to.
func editable(src []byte) error {
	if len(src) > MaxFileSize {
		return &Error{Message: fmt.Sprintf("file is %d bytes; instance files are limited to %d", len(src), MaxFileSize),
			Fix: "keep only instance documents in it, or split it into several files"}
	}
	if bytes.HasPrefix(src, []byte{0xFE, 0xFF}) || bytes.HasPrefix(src, []byte{0xFF, 0xFE}) {
		return &Error{Message: "file is UTF-16, which cannot be edited in place", Fix: "convert it to UTF-8"}
	}
	return nil
}

// decodeDocuments returns the document nodes of src, empty ones included.
func decodeDocuments(src []byte) ([]*yaml.Node, error) {
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, syntaxError("", src, err)
		}
		docs = append(docs, doc)
	}
}

// sslSite is where spec.ssl of one instance is, or would go.
type sslSite struct {
	doc     int        // index of the instance's document
	specKey *yaml.Node // the key "spec"
	spec    *yaml.Node // its mapping
	key     *yaml.Node // the key "ssl", nil when absent
	value   *yaml.Node // its value, nil when absent
}

// findSSL finds the document of the instance named name and its spec.ssl.
func findSSL(docs []*yaml.Node, name string) (*sslSite, error) {
	found := -1
	var names []string
	for i, doc := range docs {
		n := documentName(doc)
		if n == "" {
			continue
		}
		names = append(names, n)
		if n != name {
			continue
		}
		if found >= 0 {
			return nil, &Error{Line: docs[i].Line, Field: "metadata.name",
				Message: fmt.Sprintf("instance %q is defined twice in this file (first on line %d)", name, docs[found].Line),
				Fix:     "names must be unique in the fleet: remove or rename one document"}
		}
		found = i
	}
	if found < 0 {
		fix := "this file defines no instance: check the file and the name"
		if len(names) > 0 {
			fix = "check the name; this file defines " + strings.Join(names, ", ")
		}
		return nil, &Error{Field: "metadata.name", Message: fmt.Sprintf("no instance named %q in this file", name), Fix: fix}
	}

	root := deref(docs[found].Content[0])
	site := &sslSite{doc: found}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "spec" {
			if site.specKey != nil {
				return nil, &Error{Line: k.Line, Column: k.Column, Field: "spec",
					Message: fmt.Sprintf("instance %q has two spec keys", name), Fix: "keep only one of them"}
			}
			site.specKey, site.spec = k, root.Content[i+1]
		}
	}
	if site.spec == nil {
		return nil, &Error{Line: root.Line, Column: root.Column, Field: "spec",
			Message: fmt.Sprintf("instance %q has no spec", name), Fix: "add spec: with datastore, hosts and ssl"}
	}
	if site.spec.Kind == yaml.AliasNode {
		return nil, &Error{Line: site.spec.Line, Column: site.spec.Column, Field: "spec",
			Message: fmt.Sprintf("spec of instance %q is the alias *%s, which other documents may share", name, site.spec.Value),
			Fix:     "write the spec out in this document, then run again"}
	}
	if site.spec.Kind != yaml.MappingNode {
		return nil, &Error{Line: site.spec.Line, Column: site.spec.Column, Field: "spec",
			Message: fmt.Sprintf("spec of instance %q is %s, not a mapping", name, describe(site.spec)),
			Fix:     "write spec: as a mapping with datastore, hosts and ssl"}
	}
	for i := 0; i+1 < len(site.spec.Content); i += 2 {
		k := site.spec.Content[i]
		if k.ShortTag() == "!!merge" || k.Kind == yaml.AliasNode {
			return nil, &Error{Line: k.Line, Column: k.Column, Field: "spec",
				Message: fmt.Sprintf("spec of instance %q uses a merge key or alias as a key", name),
				Fix:     "write each field of spec out, then run again"}
		}
		if k.Kind != yaml.ScalarNode || k.Value != "ssl" {
			continue
		}
		if site.key != nil {
			return nil, &Error{Line: k.Line, Column: k.Column, Field: "spec.ssl",
				Message: fmt.Sprintf("instance %q sets spec.ssl twice (first on line %d)", name, site.key.Line),
				Fix:     "keep only one of them, then run again"}
		}
		site.key, site.value = k, site.spec.Content[i+1]
	}
	return site, nil
}

// documentName returns metadata.name of a mapping document, or "".
func documentName(doc *yaml.Node) string {
	if len(doc.Content) == 0 {
		return ""
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return ""
	}
	meta := mappingValue(root, "metadata")
	if meta == nil || meta.Kind != yaml.MappingNode {
		return ""
	}
	if n := mappingValue(meta, "name"); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// mappingValue returns the (dereferenced) value of the first key named key
// in the mapping m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// editor splices one edit into src.
type editor struct {
	src   []byte
	lines []int // byte offset of the start of each line
	name  string
}

// lineStarts returns where each line of src starts, breaking lines where
// the YAML parser does (CR LF, CR, LF, NEL, LS and PS), so that its line
// numbers index the result. A leading byte order mark is not in column 1.
func lineStarts(src []byte) []int {
	start := 0
	if bytes.HasPrefix(src, []byte("\uFEFF")) {
		start = 3
	}
	starts := []int{start}
	for i := start; i < len(src); {
		if n := breakAt(src, i); n > 0 {
			i += n
			starts = append(starts, i)
			continue
		}
		i++
	}
	return starts
}

// breakAt returns the length of the line break at src[i], 0 if none.
func breakAt(src []byte, i int) int {
	switch src[i] {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(src) && src[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2:
		if i+1 < len(src) && src[i+1] == 0x85 {
			return 2
		}
	case 0xE2:
		if i+2 < len(src) && src[i+1] == 0x80 && (src[i+2] == 0xA8 || src[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

// offset returns the byte offset of n's position, which the parser counts
// in characters.
func (e *editor) offset(n *yaml.Node) (int, bool) {
	if n.Line < 1 || n.Line > len(e.lines) {
		return 0, false
	}
	off := e.lines[n.Line-1]
	for range n.Column - 1 {
		if off >= len(e.src) || breakAt(e.src, off) > 0 {
			return 0, false
		}
		_, size := utf8.DecodeRune(e.src[off:])
		off += size
	}
	return off, true
}

// skipProperties skips the tag and anchor a node's position starts with.
func (e *editor) skipProperties(off int) int {
	for off < len(e.src) && (e.src[off] == '!' || e.src[off] == '&') {
		for off < len(e.src) && e.src[off] != ' ' && e.src[off] != '\t' && breakAt(e.src, off) == 0 {
			off++
		}
		for off < len(e.src) && (e.src[off] == ' ' || e.src[off] == '\t') {
			off++
		}
	}
	return off
}

func (e *editor) notInPlace(n *yaml.Node, what, want string) error {
	return &Error{Line: n.Line, Column: n.Column, Field: "spec.ssl",
		Message: fmt.Sprintf("spec.ssl of instance %q is %s, which cannot be edited in place", e.name, what),
		Fix:     fmt.Sprintf("write it on one line as ssl: %s, then run again", want)}
}

// replace swaps the text of the scalar spec.ssl for want, inside its quotes
// if it has any.
func (e *editor) replace(site *sslSite, want string) ([]byte, error) {
	v := site.value
	switch {
	case v.Kind == yaml.AliasNode:
		return nil, &Error{Line: v.Line, Column: v.Column, Field: "spec.ssl",
			Message: fmt.Sprintf("spec.ssl of instance %q is the alias *%s, which other fields may share", e.name, v.Value),
			Fix:     fmt.Sprintf("write the value out as ssl: %s, then run again", want)}
	case v.Kind != yaml.ScalarNode:
		return nil, e.notInPlace(v, describe(v), want)
	case v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return nil, e.notInPlace(v, "a block scalar (| or >)", want)
	}
	off, ok := e.offset(v)
	if !ok {
		return nil, e.notInPlace(v, "at a position outside the file", want)
	}
	off = e.skipProperties(off)
	var from, to int // the bytes to replace
	switch {
	case v.Style&yaml.SingleQuotedStyle != 0:
		end, ok := e.closingQuote(off, '\'')
		if !ok {
			return nil, e.notInPlace(v, "a quoted string over several lines", want)
		}
		from, to = off+1, end
	case v.Style&yaml.DoubleQuotedStyle != 0:
		end, ok := e.closingQuote(off, '"')
		if !ok {
			return nil, e.notInPlace(v, "a quoted string over several lines", want)
		}
		from, to = off+1, end
	default:
		if v.Value == "" {
			return nil, &Error{Line: site.key.Line, Column: site.key.Column, Field: "spec.ssl",
				Message: fmt.Sprintf("spec.ssl of instance %q has no value", e.name),
				Fix:     fmt.Sprintf("write ssl: %s", want)}
		}
		if !bytes.HasPrefix(e.src[off:], []byte(v.Value)) {
			return nil, e.notInPlace(v, "a value over several lines", want)
		}
		from, to = off, off+len(v.Value)
	}
	return splice(e.src, from, to, want), nil
}

// closingQuote returns the offset of the quote closing the string that
// opens at off, if it closes on the same line.
func (e *editor) closingQuote(off int, quote byte) (int, bool) {
	if off >= len(e.src) || e.src[off] != quote {
		return 0, false
	}
	for i := off + 1; i < len(e.src); i++ {
		switch c := e.src[i]; {
		case breakAt(e.src, i) > 0:
			return 0, false
		case quote == '"' && c == '\\':
			i++ // the escaped character
		case c == quote && quote == '\'' && i+1 < len(e.src) && e.src[i+1] == '\'':
			i++ // '' is a quote inside the string
		case c == quote:
			return i, true
		}
	}
	return 0, false
}

// insert adds "ssl: want" to the spec mapping: as a line of its own at the
// top of a block mapping, or after the opening brace of a flow mapping.
func (e *editor) insert(site *sslSite, want string) ([]byte, error) {
	spec := site.spec
	if spec.Style&yaml.FlowStyle != 0 {
		off, ok := e.offset(spec)
		if off = e.skipProperties(off); !ok || off >= len(e.src) || e.src[off] != '{' {
			return nil, e.cannotInsert(spec, want)
		}
		entry := "ssl: " + want
		if len(spec.Content) > 0 {
			entry += ", "
		}
		return splice(e.src, off+1, off+1, entry), nil
	}
	first := spec.Content[0]
	keyAt, ok := e.offset(first)
	if !ok || first.Line <= site.specKey.Line {
		return nil, e.cannotInsert(spec, want)
	}
	lineStart := e.lines[first.Line-1]
	indent := e.src[lineStart:keyAt]
	if len(bytes.Trim(indent, " ")) > 0 {
		return nil, e.cannotInsert(spec, want)
	}
	// The new line goes right under "spec:", above the head comment of the
	// first key, unless the mapping has a tag or anchor of its own, which
	// may stand on that line.
	at := e.lines[site.specKey.Line]
	if spec.Anchor != "" || spec.Style&yaml.TaggedStyle != 0 {
		at = lineStart
	}
	eol := e.lineBreak(site.specKey.Line)
	line := string(indent) + "ssl: " + want + eol
	return splice(e.src, at, at, line), nil
}

// lineBreak returns the bytes that end line (1-based), "\n" for the last.
func (e *editor) lineBreak(line int) string {
	if line >= len(e.lines) {
		return "\n"
	}
	end := e.lines[line]
	for i := e.lines[line-1]; i < end; i++ {
		if n := breakAt(e.src, i); n > 0 && i+n == end {
			return string(e.src[i:end])
		}
	}
	return "\n"
}

func (e *editor) cannotInsert(spec *yaml.Node, want string) error {
	return &Error{Line: spec.Line, Column: spec.Column, Field: "spec.ssl",
		Message: fmt.Sprintf("instance %q has no spec.ssl, and its spec is laid out so that one cannot be added in place", e.name),
		Fix:     fmt.Sprintf("add ssl: %s under spec by hand", want)}
}

func splice(src []byte, from, to int, text string) []byte {
	out := make([]byte, 0, len(src)-(to-from)+len(text))
	out = append(out, src[:from]...)
	out = append(out, text...)
	return append(out, src[to:]...)
}

// verifyEdit checks that out is src with only spec.ssl of the instance at
// site changed to want: the same documents node for node but for that
// value, and valid wherever src was.
func verifyEdit(src, out []byte, docs []*yaml.Node, site *sslSite, want string) error {
	name := documentName(docs[site.doc])
	failed := &Error{Line: site.spec.Line, Field: "spec.ssl",
		Message: fmt.Sprintf("could not edit spec.ssl of instance %q in place", name),
		Fix:     fmt.Sprintf("set ssl: %s by hand", want)}
	got, err := decodeDocuments(out)
	if err != nil || len(got) != len(docs) {
		return failed
	}
	// What the documents of out must be: those of src with the edit made.
	if site.value != nil {
		site.value.Value, site.value.Tag = want, "!!str"
	} else {
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "ssl"}
		value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: want}
		site.spec.Content = slices.Insert(site.spec.Content, 0, key, value)
	}
	for i := range docs {
		if !sameNode(docs[i], got[i]) {
			return failed
		}
	}
	if _, err := Parse("", src, DefaultDefaults()); err != nil {
		return nil // src was not valid; out need not be
	}
	if _, err := Parse("", out, DefaultDefaults()); err != nil {
		return err
	}
	return nil
}

// sameNode reports whether two node trees hold the same YAML: kinds, tags,
// values, anchors and aliases, not positions, styles or comments.
func sameNode(a, b *yaml.Node) bool {
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !sameNode(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}
