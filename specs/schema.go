package specs

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// kind is the YAML shape a field takes.
type kind int

const (
	kindObject     kind = iota
	kindString          // a YAML string scalar
	kindBool            // true or false
	kindStringList      // a sequence of strings
	kindStringMap       // a mapping of strings to strings
)

// field describes one field of the instance document. The parser walks this
// tree, and JSONSchema renders it, so the two always agree.
type field struct {
	name     string
	kind     kind
	required bool
	enum     []string
	doc      string
	example  string // a value for fix suggestions, as it would be written
	pattern  string // JSON Schema pattern of a string (or of list items)
	fields   []*field
	// check validates a string value (or each list item, each map key and
	// value). It returns the problem and how to fix it, or "" if none.
	check func(v string) (problem, fix string)
	// checkKey validates each key of a string map.
	checkKey func(k string) (problem, fix string)
}

func (f *field) child(name string) *field {
	for _, c := range f.fields {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (f *field) childNames() []string {
	names := make([]string, len(f.fields))
	for i, c := range f.fields {
		names[i] = c.name
	}
	return names
}

var toggle = []string{Enabled, Disabled}

// schema is the instance document.
var schema = &field{kind: kindObject, fields: []*field{
	{name: "apiVersion", kind: kindString, required: true, enum: []string{APIVersion},
		doc: "Version of the instance schema."},
	{name: "kind", kind: kindString, required: true, enum: []string{Kind},
		doc: "Always Instance."},
	{name: "metadata", kind: kindObject, required: true, example: "{name: orders-db}",
		doc: "Identity of the instance.", fields: []*field{
			{name: "name", kind: kindString, required: true, example: "orders-db",
				pattern: `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`, check: checkName,
				doc: "Unique name in the fleet: a DNS-1123 label (lower-case letters, digits and '-', at most 63)."},
			{name: "labels", kind: kindStringMap, checkKey: checkLabelKey, check: checkLabelValue,
				doc: "String labels, for policies and grouping (env, team, ...)."},
			{name: "annotations", kind: kindStringMap, checkKey: checkLabelKey,
				doc: "Free-form string notes; the reconciler does not act on them."},
		}},
	{name: "spec", kind: kindObject, required: true, example: "{datastore: {type: mysql}, hosts: [db.internal], ssl: enabled}",
		doc: "Desired state of the instance.", fields: []*field{
			{name: "datastore", kind: kindObject, required: true, example: "{type: mysql}",
				doc: "The database server on the host.", fields: []*field{
					{name: "type", kind: kindString, required: true,
						enum: []string{MySQL, MariaDB, PostgreSQL, MongoDB, Cassandra, Manticore},
						doc:  "Datastore type."},
					{name: "version", kind: kindString, example: `"8.0"`,
						doc: `Datastore version, as a string ("8.0", "16"): installers choose reload or restart by it.`},
				}},
			{name: "hosts", kind: kindStringList, required: true, example: "[orders-db.db.internal]",
				check: checkHost,
				doc:   "DNS names and IP addresses clients use; they become the certificate's SANs."},
			{name: "ssl", kind: kindString, required: true, enum: toggle,
				doc: "Whether the datastore serves TLS: the field merge requests flip."},
			{name: "rpcEncryption", kind: kindString, enum: toggle,
				doc: "Whether messages between the reconciler and the instance's agent are encrypted with a per-instance key. Default disabled."},
			{name: "tls", kind: kindObject,
				doc: "Optional TLS tuning; what is left out comes from the reconciler's configuration.", fields: []*field{
					{name: "ttl", kind: kindString, example: "720h", pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
						check: checkTTL, doc: "Certificate lifetime as a Go duration (720h); renewed at two thirds of it. At least 1h."},
					{name: "minVersion", kind: kindString, enum: []string{"1.2", "1.3"},
						doc: "Lowest TLS version the datastore accepts."},
					{name: "requireSecureTransport", kind: kindBool,
						doc: "Refuse plaintext client connections once SSL is on."},
					{name: "keyType", kind: kindString, enum: []string{KeyTypeEC, KeyTypeRSA},
						doc: "Certificate key: ec (ECDSA P-256, the default) or rsa (RSA 2048) for clients that need it."},
					{name: "provider", kind: kindString,
						enum: []string{ProviderVault, ProviderLocal, ProviderInline, ProviderHref, ProviderNone},
						doc:  "Key provider for this instance, overriding the reconciler's default."},
				}},
		}},
}}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func checkName(v string) (string, string) {
	switch {
	case v == "":
		return "must not be empty", "give the instance a name such as orders-db"
	case len(v) > 63:
		return fmt.Sprintf("is %d characters long; at most 63 are allowed", len(v)), "shorten the name"
	case !nameRE.MatchString(v):
		return fmt.Sprintf("%q is not a DNS-1123 label", v),
			fmt.Sprintf("use lower-case letters, digits and '-', starting and ending with a letter or digit, such as %q", suggestName(v))
	}
	return "", ""
}

// suggestName turns v into a valid name, for the fix of a bad one.
func suggestName(v string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(v) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return "orders-db"
	}
	return s
}

var labelRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
var labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)

func checkLabelKey(k string) (string, string) {
	if !labelRE.MatchString(k) || len(k) > 253 {
		return fmt.Sprintf("label key %q is not valid", k),
			"use letters, digits, '-', '_' and '.', with an optional DNS prefix and '/' (team, app.example.com/tier)"
	}
	return "", ""
}

func checkLabelValue(v string) (string, string) {
	if !labelValueRE.MatchString(v) || len(v) > 63 {
		return fmt.Sprintf("label value %q is not valid", v),
			"use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
	}
	return "", ""
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// checkHost accepts an IP address or a lower-case DNS name that a
// certificate can carry as a SAN.
func checkHost(h string) (string, string) {
	if net.ParseIP(h) != nil {
		return "", ""
	}
	switch {
	case h == "":
		return "empty host", "remove the empty entry"
	case strings.HasPrefix(h, "*"):
		return fmt.Sprintf("%q is a wildcard", h),
			"name each host the instance answers on; a wildcard certificate would also be valid for every other host under it"
	case strings.Contains(h, "://") || strings.ContainsAny(h, "/:"):
		return fmt.Sprintf("%q is not a host name or IP address", h),
			"write only the host, without scheme, port or path (orders-db.db.internal, 10.0.4.17)"
	case h != strings.ToLower(h):
		return fmt.Sprintf("%q has upper-case letters", h), fmt.Sprintf("write it as %q", strings.ToLower(h))
	case strings.HasSuffix(h, "."):
		return fmt.Sprintf("%q ends with a dot", h), fmt.Sprintf("write it as %q", strings.TrimSuffix(h, "."))
	case len(h) > 253:
		return fmt.Sprintf("%q is longer than 253 characters", h), "use a shorter DNS name"
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) > 63 || !dnsLabelRE.MatchString(label) {
			return fmt.Sprintf("%q is not a valid DNS name or IP address", h),
				"use labels of lower-case letters, digits and '-' separated by dots, or an IPv4/IPv6 address"
		}
	}
	return "", ""
}

func checkTTL(v string) (string, string) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Sprintf("%q is not a duration", v), `write hours, minutes or seconds such as "720h" or "90m" (days are not a unit: 30 days is "720h")`
	}
	if d < time.Hour {
		return fmt.Sprintf("%s is shorter than the 1h minimum", v), `use "1h" or longer`
	}
	return "", ""
}

// JSONSchema returns a JSON Schema (draft 2020-12) of one instance
// document, for editors that validate YAML against a schema.
func JSONSchema() []byte {
	root := jsonSchemaOf(schema)
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://reconciler.dev/schemas/instance-v1.json"
	root["title"] = "reconciler Instance"
	out, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("marshal schema: %v", err)) // the schema is a constant
	}
	return append(out, '\n')
}

func jsonSchemaOf(f *field) map[string]any {
	s := map[string]any{}
	if f.doc != "" {
		s["description"] = f.doc
	}
	switch f.kind {
	case kindObject:
		s["type"] = "object"
		s["additionalProperties"] = false
		props := map[string]any{}
		var required []string
		for _, c := range f.fields {
			props[c.name] = jsonSchemaOf(c)
			if c.required {
				required = append(required, c.name)
			}
		}
		s["properties"] = props
		if len(required) > 0 {
			s["required"] = required
		}
	case kindString:
		s["type"] = "string"
		if len(f.enum) > 0 {
			s["enum"] = f.enum
		}
		if f.pattern != "" {
			s["pattern"] = f.pattern
		}
	case kindBool:
		s["type"] = "boolean"
	case kindStringList:
		s["type"] = "array"
		s["items"] = map[string]any{"type": "string"}
		s["uniqueItems"] = true
		if f.required {
			s["minItems"] = 1
		}
	case kindStringMap:
		s["type"] = "object"
		s["additionalProperties"] = map[string]any{"type": "string"}
	}
	return s
}

// CheckName checks an instance name as metadata.name is checked: it
// returns the problem and its fix, or two empty strings.
func CheckName(name string) (problem, fix string) { return checkName(name) }
