// Command genfleet writes the synthetic fleet repository that bench/run.sh
// measures: N instance files under DIR/instances/<env>/<datastore>/, about a
// tenth of them multi-document (a primary and its replicas), the three-rule
// policy under DIR/policies, and DIR/fleet.json with the counts and the
// policy results the fleet must produce.
//
// The output depends only on -n and -seed, so every run of the benchmark, on
// every machine, measures the same fleet. About 2% of the instances violate
// a deny rule, the rest pass them; warnings are common, as in a real fleet.
//
// Usage:
//
//	genfleet [-n 10000] [-seed 1] DIR
package main

import (
	"embed"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// policies holds the benchmark's policy and its data file, copied verbatim
// into every generated fleet.
//
//go:embed policies
var policies embed.FS

// sslRequired mirrors data.encryption.ssl_required in
// policies/encryption.yaml; the generator needs it to decide which instances
// violate deny_ssl_required and to predict the results.
var sslRequired = []string{"mysql", "mariadb", "postgresql", "mongodb", "cassandra"}

type datastore struct {
	kind     string
	short    string // in instance names, to keep them readable
	versions []string
}

var datastores = []datastore{
	{"mysql", "my", []string{"5.7", "8.0", "8.4"}},
	{"mariadb", "maria", []string{"10.6", "10.11", "11.4"}},
	{"postgresql", "pg", []string{"13", "14", "15", "16", "17"}},
	{"mongodb", "mongo", []string{"6.0", "7.0", "8.0"}},
	{"cassandra", "cass", []string{"4.0", "4.1", "5.0"}},
	{"manticore", "manticore", []string{"6.3", "9.3"}},
}

// apps pairs each application with the team that owns its databases.
var apps = [][2]string{
	{"orders", "storefront"}, {"catalog", "storefront"}, {"reviews", "storefront"},
	{"payments", "payments"}, {"ledger", "payments"}, {"billing", "payments"},
	{"users", "identity"}, {"sessions", "identity"},
	{"inventory", "supply"}, {"shipping", "supply"},
	{"analytics", "data"}, {"events", "data"},
	{"search", "discovery"}, {"audit", "security"},
}

var regions = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1"}

// instance is one generated document. Empty rpc and minTLS leave the field
// out, as many real files do.
type instance struct {
	name, env, team, region, tier string
	datastore, version            string
	hosts                         []string
	ssl, rpc, minTLS              string
}

// Stats describes a generated fleet. Deny and Warn are the numbers of
// results the policy yields over every document (conftest's "failures" and
// "warnings"), so a benchmark can check that each tool did the whole work.
type Stats struct {
	Files              int `json:"files"`
	MultiDocumentFiles int `json:"multi_document_files"`
	Instances          int `json:"instances"`
	DeniedInstances    int `json:"denied_instances"`
	Deny               int `json:"deny"`
	Warn               int `json:"warn"`
}

func main() {
	n := flag.Int("n", 10000, "number of instance files to write")
	seed := flag.Uint64("seed", 1, "random seed; the same seed and -n give the same fleet")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: genfleet [-n N] [-seed S] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	st, err := generate(flag.Arg(0), *n, *seed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "genfleet: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("genfleet: %d files (%d multi-document), %d instances, %d denied (%d deny, %d warn results)\n",
		st.Files, st.MultiDocumentFiles, st.Instances, st.DeniedInstances, st.Deny, st.Warn)
}

// generate writes the fleet into dir, which must not exist yet: a fleet is
// never generated over another one, whose leftover files would be measured
// too.
func generate(dir string, n int, seed uint64) (Stats, error) {
	if _, err := os.Stat(dir); err == nil {
		return Stats{}, fmt.Errorf("create fleet: %s already exists", dir)
	}
	if err := writePolicies(dir); err != nil {
		return Stats{}, err
	}
	g := generator{rng: rand.New(rand.NewPCG(seed, 0x5eed)), dirs: map[string]bool{}}
	var st Stats
	for range n {
		docs := 1
		if g.rng.IntN(10) == 0 {
			docs = 2 + g.rng.IntN(2)
			st.MultiDocumentFiles++
		}
		group := g.group(docs)
		var b strings.Builder
		for i, in := range group {
			if i > 0 {
				b.WriteString("---\n")
			}
			in.render(&b)
			deny, warn := in.verdicts()
			st.Deny += deny
			st.Warn += warn
			if deny > 0 {
				st.DeniedInstances++
			}
		}
		file := filepath.Join(dir, "instances", group[0].env, group[0].datastore, group[0].name+".yaml")
		if err := g.write(file, b.String()); err != nil {
			return Stats{}, err
		}
		st.Files++
		st.Instances += len(group)
	}
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return Stats{}, fmt.Errorf("encode stats: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.json"), append(out, '\n'), 0o644); err != nil {
		return Stats{}, fmt.Errorf("write stats: %w", err)
	}
	return st, nil
}

func writePolicies(dir string) error {
	return fs.WalkDir(policies, "policies", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := policies.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read embedded policy: %w", err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("create policy directory: %w", err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("write policy: %w", err)
		}
		return nil
	})
}

type generator struct {
	rng  *rand.Rand
	next int             // instances generated so far: names and addresses derive from it
	dirs map[string]bool // directories already created
}

// group returns the instances of one file: a primary and docs-1 replicas,
// which share an application, datastore, environment and region.
func (g *generator) group(docs int) []instance {
	app := apps[g.rng.IntN(len(apps))]
	ds := datastores[g.rng.IntN(len(datastores))]
	env := pick(g.rng, []string{"production", "production", "production", "production",
		"staging", "staging", "staging", "dev", "dev", "dev"})
	region := regions[g.rng.IntN(len(regions))]
	version := ds.versions[g.rng.IntN(len(ds.versions))]
	tier := "standard"
	if env == "production" && g.rng.IntN(4) == 0 {
		tier = "critical"
	}
	primary := fmt.Sprintf("%s-%s-%05d", app[0], ds.short, g.next)
	out := make([]instance, docs)
	for i := range out {
		name := primary
		if i > 0 {
			name = fmt.Sprintf("%s-replica-%d", primary, i)
		}
		in := instance{
			name: name, env: env, team: app[1], region: region, tier: tier,
			datastore: ds.kind, version: version,
		}
		in.hosts = g.hosts(name, env, region)
		g.settings(&in)
		out[i] = in
		g.next++
	}
	return out
}

// hosts returns one to three addresses, unique across the fleet: the
// certificate SANs of an instance.
func (g *generator) hosts(name, env, region string) []string {
	hosts := []string{fmt.Sprintf("%s.%s.%s.db.internal", name, region, env)}
	if g.rng.IntN(3) == 0 {
		hosts = append(hosts, name+".db.internal")
	}
	if g.rng.IntN(2) == 0 {
		// 254 usable last octets per /24, then the next /24.
		k := g.next
		hosts = append(hosts, fmt.Sprintf("10.%d.%d.%d", (k/254/256)%256, (k/254)%256, k%254+1))
	}
	return hosts
}

// settings chooses ssl, rpcEncryption and tls. About one instance in 50
// violates a deny rule (one in 35 outside dev, where nothing is denied);
// every other instance passes both deny rules.
func (g *generator) settings(in *instance) {
	required := in.env == "production" && slices.Contains(sslRequired, in.datastore)
	violate := in.env != "dev" && g.rng.IntN(35) == 0

	switch {
	case required:
		in.ssl = "enabled"
	case in.env == "production":
		in.ssl = chance(g.rng, 70, "enabled", "disabled")
	case in.env == "staging":
		in.ssl = chance(g.rng, 85, "enabled", "disabled")
	default:
		in.ssl = chance(g.rng, 40, "enabled", "disabled")
	}
	if in.env == "dev" {
		in.rpc = pick(g.rng, []string{"enabled", "enabled", "disabled", "", ""})
	} else {
		in.rpc = "enabled"
	}
	if violate {
		if required && g.rng.IntN(2) == 0 {
			in.ssl = "disabled"
		} else {
			in.rpc = pick(g.rng, []string{"disabled", ""})
		}
	}
	if in.ssl == "enabled" {
		weights := []string{"1.3", "1.3", "1.3", "1.2", ""} // production leans to 1.3
		if in.env != "production" {
			weights = []string{"1.3", "1.2", ""}
		}
		in.minTLS = pick(g.rng, weights)
	}
}

// verdicts predicts how many deny and warn results policies/tls.rego gives
// the instance; the generator's test holds the two in agreement.
func (in *instance) verdicts() (deny, warn int) {
	if in.env == "production" && slices.Contains(sslRequired, in.datastore) && in.ssl != "enabled" {
		deny++
	}
	if in.env != "dev" && in.rpc != "enabled" {
		deny++
	}
	if in.env == "production" && in.ssl == "enabled" && in.minTLS != "1.3" {
		warn++
	}
	return deny, warn
}

// render writes the instance as YAML. Every value is a plain scalar that
// needs no quoting but the versions, which must stay strings.
func (in *instance) render(b *strings.Builder) {
	fmt.Fprintf(b, "apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n  name: %s\n", in.name)
	fmt.Fprintf(b, "  labels: {env: %s, team: %s, region: %s, tier: %s}\n", in.env, in.team, in.region, in.tier)
	fmt.Fprintf(b, "spec:\n  datastore: {type: %s, version: %q}\n", in.datastore, in.version)
	fmt.Fprintf(b, "  hosts: [%s]\n  ssl: %s\n", strings.Join(in.hosts, ", "), in.ssl)
	if in.rpc != "" {
		fmt.Fprintf(b, "  rpcEncryption: %s\n", in.rpc)
	}
	if in.minTLS != "" {
		fmt.Fprintf(b, "  tls: {minVersion: %q}\n", in.minTLS)
	}
}

func (g *generator) write(file, content string) error {
	if d := filepath.Dir(file); !g.dirs[d] {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create instance directory: %w", err)
		}
		g.dirs[d] = true
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write instance file: %w", err)
	}
	return nil
}

func pick(rng *rand.Rand, from []string) string { return from[rng.IntN(len(from))] }

// chance returns yes with the given percent probability, no otherwise.
func chance(rng *rand.Rand, percent int, yes, no string) string {
	if rng.IntN(100) < percent {
		return yes
	}
	return no
}
