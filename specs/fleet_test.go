package specs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func instanceYAML(name string) string {
	return strings.Replace(valid, "orders-db", name, -1)
}

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"instances/a.yaml":         {Data: []byte(instanceYAML("alpha") + "---\n" + instanceYAML("shared"))},
		"instances/b/b.yml":        {Data: []byte(instanceYAML("beta"))},
		"instances/c.yaml":         {Data: []byte(instanceYAML("shared"))},
		"instances/broken.yaml":    {Data: []byte(instanceYAML("gamma") + "---\n" + strings.Replace(instanceYAML("delta"), "ssl: enabled", "ssl: yes", 1))},
		"instances/README.md":      {Data: []byte("# not an instance")},
		"instances/.hidden/x.yaml": {Data: []byte("not: [valid")},
		"policies/p.rego":          {Data: []byte("package main")},
	}
	f, err := Load(context.Background(), fsys, "instances")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range f.Instances {
		names = append(names, in.Metadata.Name+"@"+in.File)
	}
	if diff := cmp.Diff([]string{"alpha@instances/a.yaml", "beta@instances/b/b.yml"}, names); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
	wantErrs := []string{
		`instances/broken.yaml:19:8: spec.ssl: "yes" is not a valid value; use one of: enabled, disabled`,
		`instances/c.yaml:1: metadata.name: instance "shared" is also defined in instances/a.yaml:11; names must be unique in the fleet: rename or remove one of them (both are held until then)`,
	}
	var errs []string
	for _, e := range f.Errors {
		errs = append(errs, e.Error())
	}
	if diff := cmp.Diff(wantErrs, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"instances/a.yaml", "instances/b/b.yml", "instances/broken.yaml", "instances/c.yaml"}, f.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !f.Broken("instances/broken.yaml") || f.Broken("instances/a.yaml") {
		t.Error("Broken: want only instances/broken.yaml")
	}
	if !f.Held("shared") || f.Held("alpha") {
		t.Error("Held: want only shared")
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	_, err := Load(context.Background(), fstest.MapFS{}, "instances")
	if err == nil || !strings.Contains(err.Error(), `no directory "instances" in the fleet`) {
		t.Errorf("err = %v, want it to name the missing directory", err)
	}
}

func TestLoadOneBadFileInALargeFleet(t *testing.T) {
	fsys := fstest.MapFS{}
	for i := range 2000 {
		fsys[fmt.Sprintf("instances/db-%04d.yaml", i)] = &fstest.MapFile{Data: []byte(instanceYAML(fmt.Sprintf("db-%04d", i)))}
	}
	fsys["instances/db-0500.yaml"].Data = []byte("apiVersion: reconciler/v1\n\tkind: Instance\n")
	f, err := Load(context.Background(), fsys, "instances")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Instances) != 1999 || len(f.Errors) != 1 {
		t.Fatalf("got %d instances and %d errors, want 1999 and 1", len(f.Instances), len(f.Errors))
	}
	if got, want := f.Errors[0].Error(), "instances/db-0500.yaml:2:1: tab character in indentation; YAML indents with spaces only: replace the tab with spaces"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestLoadHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fsys := fstest.MapFS{"instances/a.yaml": {Data: []byte(valid)}}
	if _, err := Load(ctx, fsys, "instances"); err == nil {
		t.Error("Load with a cancelled context succeeded")
	}
}
