package main

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// policies is the fleet's policy, copied into every generated fleet.
//
//go:embed policies
var policies embed.FS

// fleetDatastores are the datastores the instances take in turn, with a
// version each: the agent load installs nothing, so the type only
// shapes the plan and the metrics' labels.
var fleetDatastores = [][2]string{
	{"postgresql", "16"}, {"mysql", "8.0"}, {"mariadb", "10.11"},
	{"mongodb", "7.0"}, {"cassandra", "4.1"}, {"manticore", "6.3"},
}

// instanceName is the name of the i-th instance (from 0), shared by the
// fleet writer and the agents, which must agree on it.
func instanceName(i int) string { return fmt.Sprintf("agent-%05d", i) }

// FleetStats is DIR/fleet.json, what a generated fleet holds.
type FleetStats struct {
	Instances int    `json:"instances"`
	SSL       string `json:"ssl"`
}

// writeFleet writes a fleet of n instances into dir, which must not
// exist: one file per instance under instances/<datastore>/, each with
// rpcEncryption enabled (every agent enrolls and polls sealed) and ssl
// as given (enabled: the daemon issues a certificate per instance from
// its default provider), the policy under policies/, and fleet.json.
func writeFleet(dir string, n int, ssl string) (FleetStats, error) {
	if ssl != "enabled" && ssl != "disabled" {
		return FleetStats{}, fmt.Errorf("write fleet: ssl %q is not enabled or disabled", ssl)
	}
	if _, err := os.Stat(dir); err == nil {
		return FleetStats{}, fmt.Errorf("write fleet: %s already exists", dir)
	}
	for _, ds := range fleetDatastores {
		if err := os.MkdirAll(filepath.Join(dir, "instances", ds[0]), 0o755); err != nil {
			return FleetStats{}, fmt.Errorf("write fleet: %w", err)
		}
	}
	var b strings.Builder
	for i := range n {
		name, ds := instanceName(i), fleetDatastores[i%len(fleetDatastores)]
		b.Reset()
		fmt.Fprintf(&b, "apiVersion: reconciler/v1\nkind: Instance\nmetadata:\n  name: %s\n", name)
		fmt.Fprintf(&b, "  labels: {env: production, team: agent-load}\n")
		fmt.Fprintf(&b, "spec:\n  datastore: {type: %s, version: %q}\n", ds[0], ds[1])
		fmt.Fprintf(&b, "  hosts: [%s.db.internal]\n  ssl: %s\n  rpcEncryption: enabled\n", name, ssl)
		file := filepath.Join(dir, "instances", ds[0], name+".yaml")
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			return FleetStats{}, fmt.Errorf("write fleet: %w", err)
		}
	}
	if err := copyPolicies(dir); err != nil {
		return FleetStats{}, err
	}
	st := FleetStats{Instances: n, SSL: ssl}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return FleetStats{}, fmt.Errorf("write fleet: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.json"), append(data, '\n'), 0o644); err != nil {
		return FleetStats{}, fmt.Errorf("write fleet: %w", err)
	}
	return st, nil
}

func copyPolicies(dir string) error {
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
			return fmt.Errorf("write policy: %w", err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("write policy: %w", err)
		}
		return nil
	})
}
