package specs_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/reconciler-dev/reconciler/specs"
)

func reloadInstance(name, ssl string) *fstest.MapFile {
	return &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: reconciler/v1
kind: Instance
metadata: {name: %s}
spec:
  datastore: {type: postgresql, version: "15"}
  hosts: [db.example.com]
  ssl: %s
`, name, ssl)}
}

// TestReloadIsLoad checks that a fleet reloaded with a commit's changed
// files is the fleet a full Load of the commit gives.
func TestReloadIsLoad(t *testing.T) {
	base := fstest.MapFS{
		"instances/a.yaml":      reloadInstance("a-db", "disabled"),
		"instances/b.yaml":      reloadInstance("b-db", "disabled"),
		"instances/dup.yaml":    reloadInstance("a-db", "enabled"), // a-db twice: both held
		"instances/broken.yaml": {Data: []byte("kind: [\n")},
		"instances/c.yaml":      reloadInstance("c-db", "disabled"),
	}
	cases := []struct {
		name    string
		edit    func(fstest.MapFS)
		changed []string
	}{
		{"a file modified", func(m fstest.MapFS) { m["instances/b.yaml"] = reloadInstance("b-db", "enabled") }, []string{"instances/b.yaml"}},
		{"a file added", func(m fstest.MapFS) { m["instances/d.yaml"] = reloadInstance("d-db", "enabled") }, []string{"instances/d.yaml"}},
		{"a file deleted", func(m fstest.MapFS) { delete(m, "instances/c.yaml") }, []string{"instances/c.yaml"}},
		{"a duplicate resolved", func(m fstest.MapFS) { delete(m, "instances/dup.yaml") }, []string{"instances/dup.yaml"}},
		{"a broken file fixed", func(m fstest.MapFS) { m["instances/broken.yaml"] = reloadInstance("e-db", "enabled") }, []string{"instances/broken.yaml"}},
		{"a file broken", func(m fstest.MapFS) { m["instances/b.yaml"] = &fstest.MapFile{Data: []byte("spec: {ssl: maybe}\n")} }, []string{"instances/b.yaml"}},
		{"paths that are no instance file", func(m fstest.MapFS) {
			m["policies/p.rego"] = &fstest.MapFile{Data: []byte("package main\n")}
			m["instances/.hidden.yaml"] = reloadInstance("h-db", "enabled")
			m["instances/notes.txt"] = &fstest.MapFile{Data: []byte("x")}
		}, []string{"instances/.hidden.yaml", "instances/notes.txt", "policies/p.rego"}},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, err := specs.Load(ctx, base, "instances")
			if err != nil {
				t.Fatal(err)
			}
			after := fstest.MapFS{}
			for k, v := range base {
				after[k] = v
			}
			c.edit(after)
			want, err := specs.Load(ctx, after, "instances")
			if err != nil {
				t.Fatal(err)
			}
			got, err := before.Reload(ctx, after, c.changed)
			if err != nil {
				t.Fatal(err)
			}
			opts := cmp.Options{cmpopts.IgnoreUnexported(specs.Fleet{}), cmpopts.EquateEmpty()}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("Reload differs from Load (-load +reload):\n%s", diff)
			}
			for _, in := range want.Instances {
				if got.Held(in.Metadata.Name) != want.Held(in.Metadata.Name) || got.Broken(in.File) != want.Broken(in.File) {
					t.Errorf("%s: held or broken differs", in.Metadata.Name)
				}
			}
			for _, name := range []string{"a-db", "b-db"} {
				if got.Held(name) != want.Held(name) {
					t.Errorf("Held(%s) = %v, Load says %v", name, got.Held(name), want.Held(name))
				}
			}
			for _, file := range []string{"instances/broken.yaml", "instances/b.yaml"} {
				if got.Broken(file) != want.Broken(file) {
					t.Errorf("Broken(%s) = %v, Load says %v", file, got.Broken(file), want.Broken(file))
				}
			}
		})
	}
}
