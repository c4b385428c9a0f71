package plan

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/specs"
)

// Field is one changed leaf of the instance document, by dotted path from
// the document root (spec.ssl, spec.tls.minVersion,
// metadata.labels.env). From is nil for a field that appears, To for one
// that goes away. Lists are compared as a whole.
type Field struct {
	Path string
	From any
	To   any
}

type leaf struct {
	path  string
	value any
}

// flatten lists the leaves of an instance with defaults applied, sorted by
// path, so that spelling a default out is not a change.
func flatten(in *specs.Instance) []leaf {
	if in == nil {
		return nil
	}
	s := in.Spec
	out := []leaf{
		{"spec.datastore.type", s.Datastore.Type},
		{"spec.hosts", s.Hosts},
		{"spec.rpcEncryption", s.RPCEncryption},
		{"spec.ssl", s.SSL},
		{"spec.tls.keyType", s.TLS.KeyType},
		{"spec.tls.minVersion", s.TLS.MinVersion},
		{"spec.tls.provider", s.TLS.Provider},
		{"spec.tls.requireSecureTransport", s.TLS.RequireSecureTransport},
		{"spec.tls.ttl", formatDuration(s.TLS.TTL)},
	}
	if s.Datastore.Version != "" {
		out = append(out, leaf{"spec.datastore.version", s.Datastore.Version})
	}
	for k, v := range in.Metadata.Labels {
		out = append(out, leaf{mapPath("metadata.labels", k), v})
	}
	for k, v := range in.Metadata.Annotations {
		out = append(out, leaf{mapPath("metadata.annotations", k), v})
	}
	slices.SortFunc(out, func(a, b leaf) int { return strings.Compare(a.path, b.path) })
	return out
}

// sameState reports whether two instances flatten to the same leaves,
// without flattening them: most instances of a plan are unchanged.
func sameState(a, b *specs.Instance) bool {
	as, bs := a.Spec, b.Spec
	return as.Datastore == bs.Datastore && as.SSL == bs.SSL && as.RPCEncryption == bs.RPCEncryption &&
		as.TLS == bs.TLS && slices.Equal(as.Hosts, bs.Hosts) &&
		maps.Equal(a.Metadata.Labels, b.Metadata.Labels) && maps.Equal(a.Metadata.Annotations, b.Metadata.Annotations)
}

// mapPath keeps paths unambiguous for keys that hold dots or slashes
// (metadata.labels["app.kubernetes.io/tier"]).
func mapPath(prefix, key string) string {
	if strings.ContainsAny(key, "./[]\"") {
		return prefix + "[" + strconv.Quote(key) + "]"
	}
	return prefix + "." + key
}

// diffFields merges two sorted leaf lists into the fields that differ.
func diffFields(old, new []leaf) []Field {
	var out []Field
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && old[i].path < new[j].path):
			out = append(out, Field{Path: old[i].path, From: old[i].value})
			i++
		case i == len(old) || new[j].path < old[i].path:
			out = append(out, Field{Path: new[j].path, To: new[j].value})
			j++
		default:
			if !reflect.DeepEqual(old[i].value, new[j].value) {
				out = append(out, Field{Path: new[j].path, From: old[i].value, To: new[j].value})
			}
			i++
			j++
		}
	}
	return out
}

// formatDuration writes whole hours as "720h" rather than "720h0m0s".
func formatDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return d.String()
}
