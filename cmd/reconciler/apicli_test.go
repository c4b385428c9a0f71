package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandsAgainstARunningReconciler: instance list|show, ssl show,
// keys rotate and diff --server, as a user runs them against the API.
func TestCommandsAgainstARunningReconciler(t *testing.T) {
	d := startDaemon(t)
	server := []string{"--server", "https://" + d.api, "--ca-file", filepath.Join(d.dir, "reconciler-ca.pem")}
	as := func(token string, args ...string) (int, string, string) {
		t.Helper()
		t.Setenv("RECONCILER_TOKEN", token)
		return reconcile(t, append(args, server...)...)
	}

	code, out, errOut := as(d.viewer, "instance", "list")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "search-db") || !strings.Contains(out, "manticore") {
		t.Errorf("instance list: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = as(d.viewer, "instance", "show", "search-db")
	if code != 0 || !strings.Contains(out, `"phase"`) || strings.Contains(out, "encrypted_rpc_messaging") {
		t.Errorf("instance show as a viewer: %d\n%s", code, out)
	}
	code, out, _ = as(d.admin, "instance", "show", "search-db")
	if code != 0 || !strings.Contains(out, "encrypted_rpc_messaging") {
		t.Errorf("instance show as an admin: %d\n%s", code, out)
	}
	code, out, _ = as(d.admin, "ssl", "show", "search-db")
	if code != 0 || !strings.Contains(out, `"ssl": {`) || !strings.Contains(out, `"enabled": true`) {
		t.Errorf("ssl show: %d\n%s", code, out)
	}
	if code, _, errOut := as(d.viewer, "ssl", "show", "search-db"); code != 1 || !strings.Contains(errOut, "needs admin") {
		t.Errorf("ssl show as a viewer: %d %s; want 1 and the role it needs", code, errOut)
	}
	if code, _, errOut := as(d.viewer, "instance", "show", "nobody-db"); code != 1 || !strings.Contains(errOut, "no instance") {
		t.Errorf("instance show of an unknown name: %d %s", code, errOut)
	}

	code, out, errOut = as(d.admin, "keys", "rotate", "search-db")
	if code != 0 || !strings.Contains(out, "search-db: key version 2 delivered") {
		t.Errorf("keys rotate: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := as(d.admin, "keys", "rotate", "--all"); code != 1 || !strings.Contains(errOut, "already waiting") {
		t.Errorf("keys rotate --all while a rotation waits: %d %s; want 1 and why", code, errOut)
	}
	if code, _, errOut := as(d.admin, "keys", "rotate"); code != 1 || !strings.Contains(errOut, "name one instance or pass --all") {
		t.Errorf("keys rotate without a name: %d %s", code, errOut)
	}

	code, out, errOut = as(d.viewer, "diff", filepath.Join(d.dir, "fleet"))
	if code != 2 || !strings.Contains(out, "observed by https://"+d.api) || !strings.Contains(out, "search-db") {
		t.Errorf("diff --server: %d\n%s%s; want 2 and the plan against the observed state", code, out, errOut)
	}
	if code, _, errOut := reconcile(t, "instance", "list", "--server", "http://"+d.api); code != 1 || !strings.Contains(errOut, "https only") {
		t.Errorf("instance list over http: %d %s", code, errOut)
	}
	if strings.Contains(d.logs.String(), "CANARY") {
		t.Error("a token reached the daemon's log")
	}
}
