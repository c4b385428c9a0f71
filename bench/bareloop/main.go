// Command bareloop is the floor that bench/run.sh holds `reconciler diff`
// against: it reads every instance file, decodes each YAML document into a
// plain value and evaluates one prepared OPA query per document, in parallel
// on GOMAXPROCS workers, and does nothing else: no schema, no defaults, no
// plan, no report. The reconciler does all of that on top, so its time over
// this loop's is the price of its own work.
//
// It prints the numbers of files, documents and results per rule kind, so
// the benchmark can check that the loop did the whole work.
//
// Usage:
//
//	bareloop -p POLICYDIR INSTANCEDIR
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/open-policy-agent/opa/v1/rego"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"
)

// ruleKinds are the conftest rule prefixes, counted separately.
var ruleKinds = []string{"deny", "violation", "warn"}

// counts is what the loop saw. Results maps a rule kind to the number of
// results of its rules over every document.
type counts struct {
	files, documents int
	results          map[string]int
}

func (c *counts) add(o counts) {
	c.files += o.files
	c.documents += o.documents
	for k, v := range o.results {
		c.results[k] += v
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	policyDir := flag.String("p", "policies", "directory of Rego policies and their YAML or JSON data")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: bareloop -p POLICYDIR INSTANCEDIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	c, err := run(ctx, *policyDir, flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bareloop: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("files=%d documents=%d deny=%d violation=%d warn=%d\n",
		c.files, c.documents, c.results["deny"], c.results["violation"], c.results["warn"])
}

func run(ctx context.Context, policyDir, instanceDir string) (counts, error) {
	// One query for the whole package, prepared once: the cheapest way OPA
	// offers to get every deny, violation and warn rule of a document.
	// rego.Load reads the .rego files and loads the YAML and JSON files
	// beside them into data, as the reconciler and conftest -d do.
	query, err := rego.New(
		rego.Query("data.main"),
		rego.Load([]string{policyDir}, nil),
	).PrepareForEval(ctx)
	if err != nil {
		return counts{}, fmt.Errorf("prepare policy query: %w", err)
	}
	files, err := yamlFiles(instanceDir)
	if err != nil {
		return counts{}, err
	}

	workers := runtime.GOMAXPROCS(0)
	perWorker := make([]counts, workers)
	paths := make(chan string)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(paths)
		for _, f := range files {
			select {
			case paths <- f:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for w := range workers {
		g.Go(func() error {
			// Counting into a local and storing it once keeps the workers
			// from sharing anything (not even a cache line) while they run.
			c := counts{results: map[string]int{}}
			for f := range paths {
				if err := evalFile(ctx, query, f, &c); err != nil {
					return err
				}
			}
			perWorker[w] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return counts{}, err
	}
	total := counts{results: map[string]int{}}
	for _, c := range perWorker {
		total.add(c)
	}
	return total, nil
}

// yamlFiles lists the .yaml and .yml files under dir.
func yamlFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list instance files: %w", err)
	}
	return files, nil
}

// evalFile decodes every document of file and evaluates query on each.
func evalFile(ctx context.Context, query rego.PreparedEvalQuery, file string, c *counts) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read instance file: %w", err)
	}
	c.files++
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmarshal yaml %s: %w", file, err)
		}
		if doc == nil {
			continue // an empty document, such as a trailing "---"
		}
		c.documents++
		rs, err := query.Eval(ctx, rego.EvalInput(doc))
		if err != nil {
			return fmt.Errorf("evaluate policy on %s: %w", file, err)
		}
		countResults(rs, c.results)
	}
}

// countResults adds the sizes of the deny*, violation* and warn* rule sets
// of the package in rs to results.
func countResults(rs rego.ResultSet, results map[string]int) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return
	}
	pkg, _ := rs[0].Expressions[0].Value.(map[string]any)
	for rule, v := range pkg {
		set, ok := v.([]any)
		if !ok {
			continue
		}
		for _, kind := range ruleKinds {
			if rule == kind || strings.HasPrefix(rule, kind+"_") {
				results[kind] += len(set)
			}
		}
	}
}
