package manticore

import (
	"bytes"
	"context"
	"github.com/reconciler-dev/reconciler/agent/installers/confedit"
	"github.com/reconciler-dev/reconciler/agent/installers/installertest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// fixture is a Manticore host in a temporary directory.
func fixture(t *testing.T, base string) (installers.Datastore, string) {
	t.Helper()
	dir := t.TempDir()
	conf := installertest.CopyFile(t, base, dir, "manticore.conf")
	return installers.Datastore{Type: "manticore", Version: "6.3", ConfigDir: dir, Port: 9443, User: installertest.CurrentUser(t)}, conf
}

// managedDirectives parses the directives of the managed block.
func managedDirectives(t *testing.T, conf []byte) map[string][]string {
	t.Helper()
	lines := confedit.SplitLines(conf)
	first, last, ok, err := searchdBlock.Find(conf, lines)
	if err != nil || !ok {
		t.Fatalf("no managed block: %v", err)
	}
	open, close, err := searchdSection(conf, lines)
	if err != nil || first < open || last > close {
		t.Fatalf("the managed block is not inside searchd { }: %v", err)
	}
	got := map[string][]string{}
	for _, l := range lines[first+1 : last] {
		d := directive(l.Text(conf))
		if d == "" {
			continue
		}
		name, value, ok := strings.Cut(d, "=")
		if !ok {
			t.Fatalf("not a directive: %q", d)
		}
		got["searchd."+strings.TrimSpace(name)] = append(got["searchd."+strings.TrimSpace(name)], strings.TrimSpace(value))
	}
	return got
}

func TestRenderedConfiguration(t *testing.T) {
	docs := installertest.Documented(t, "documented-options.txt")
	for _, tc := range []struct {
		name, base, min string
		require         bool
	}{
		{"tls1.2-optional", "manticore.conf", "1.2", false},
		{"tls1.3-required", "manticore.conf", "1.3", true},
		{"crlf-tabs", "manticore-crlf.conf", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, conf := fixture(t, tc.base)
			if _, err := New(ds).Install(context.Background(), installertest.NewBundle(t, tc.min, tc.require)); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(conf)
			installertest.Golden(t, tc.name+".conf", bytes.ReplaceAll(got, []byte(ds.ConfigDir), []byte("/etc/manticoresearch")))
			for name, values := range managedDirectives(t, got) {
				allowed, ok := docs[name]
				if !ok {
					t.Errorf("directive %s is not in the documented list", name)
				}
				for _, v := range values {
					if name == "searchd.listen" {
						v = v[strings.LastIndexByte(v, ':')+1:]
					}
					if allowed != nil && !slices.Contains(allowed, v) {
						t.Errorf("%s = %q: not a documented value (%v)", name, v, allowed)
					}
				}
			}
		})
	}
}

func TestInstallThenRemoveRestoresTheFile(t *testing.T) {
	for _, base := range []string{"manticore.conf", "manticore-crlf.conf"} {
		t.Run(base, func(t *testing.T) {
			ds, conf := fixture(t, base)
			orig, _ := os.ReadFile(conf)
			in := New(ds)
			res, err := in.Install(context.Background(), installertest.NewBundle(t, "1.2", true))
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != installers.RestartRequired || !strings.Contains(res.Message, "plain HTTP and MySQL listeners stay open") {
				t.Errorf("install: %s %q", res.Outcome, res.Message)
			}
			if res, err = in.Remove(context.Background()); err != nil || res.Outcome != installers.RestartRequired {
				t.Fatalf("remove: %v, %v", res, err)
			}
			got, _ := os.ReadFile(conf)
			if diff := cmp.Diff(string(orig), string(got)); diff != "" {
				t.Errorf("after remove (-original +got):\n%s", diff)
			}
			entries, _ := os.ReadDir(ds.ConfigDir)
			if len(entries) != 1 {
				t.Errorf("left behind: %d files", len(entries)-1)
			}
		})
	}
}

func TestReinstallIsANoOpWithTheSameOutcome(t *testing.T) {
	ds, conf := fixture(t, "manticore.conf")
	ds.AllowRestart, ds.RestartCommand = true, []string{"true"}
	in := New(ds)
	b := installertest.NewBundle(t, "", false)
	first, err := in.Install(context.Background(), b)
	if err != nil || first.Outcome != installers.Restarted {
		t.Fatalf("first install: %v, %v", first, err)
	}
	before := installertest.Stat(t, conf)
	in.DS.RestartCommand = []string{"false"}
	second, err := in.Install(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second install (-first +second):\n%s", diff)
	}
	if !installertest.SameFile(t, before, conf) {
		t.Error("a no-op install rewrote manticore.conf")
	}
}

func TestKeyFileIsPrivate(t *testing.T) {
	ds, _ := fixture(t, "manticore.conf")
	if _, err := New(ds).Install(context.Background(), installertest.NewBundle(t, "", false)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644, CAFile: 0o644} {
		if got := installertest.Stat(t, filepath.Join(ds.ConfigDir, name)).Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", name, got, want)
		}
	}
}

func TestFailedRestartRollsBackAndCarriesTheOutput(t *testing.T) {
	ds, conf := fixture(t, "manticore.conf")
	orig, _ := os.ReadFile(conf)
	key := filepath.Join(ds.ConfigDir, KeyFile)
	ds.AllowRestart = true
	ds.RestartCommand = installertest.Script(t, "cat '"+key+"' >&2; echo 'FATAL: failed to load ssl_key' >&2; exit 1")
	logs, logOpt := logBuffer()
	b := installertest.NewBundle(t, "1.2", false)
	_, err := New(ds, logOpt).Install(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "FATAL: failed to load ssl_key") {
		t.Fatalf("error %v, want searchd's message", err)
	}
	installertest.AssertNoKey(t, "the error", err.Error(), b)
	installertest.AssertNoKey(t, "the log", logs.String(), b)
	got, _ := os.ReadFile(conf)
	if diff := cmp.Diff(string(orig), string(got)); diff != "" {
		t.Errorf("after rollback (-original +got):\n%s", diff)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Error("the key survived the rollback")
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct{ name, conf, wantErr string }{
		{"no searchd", "common {\n}\n", "no searchd section"},
		{"ssl_cert already set", "searchd {\n  ssl_cert = /x.pem\n}\n", "already sets ssl_cert on line 2"},
		{"port taken", "searchd {\n  listen = 0.0.0.0:9443:http\n}\n", "already listens on port 9443"},
		{"brace after a directive", "searchd {\n  listen = 9306 }\nindex x {\n}\n", "brace among other text"},
		{"never closed", "searchd {\n  listen = 9306\n", "never closed"},
		{"two sections", "searchd {\n}\nsearchd {\n}\n", "two searchd sections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "manticore.conf")
			os.WriteFile(conf, []byte(tc.conf), 0o644)
			_, err := New(installers.Datastore{ConfigDir: dir, Port: 9443}).Install(context.Background(), installertest.NewBundle(t, "", false))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
			got, _ := os.ReadFile(conf)
			entries, _ := os.ReadDir(dir)
			if string(got) != tc.conf || len(entries) != 1 {
				t.Error("a refused install changed the host")
			}
		})
	}
}

func FuzzSearchdBlock(f *testing.F) {
	for _, name := range []string{"manticore.conf", "manticore-crlf.conf"} {
		data, _ := os.ReadFile(filepath.Join("testdata", name))
		f.Add(data)
	}
	f.Add([]byte("searchd{\n}"))
	f.Add([]byte("searchd # the daemon\n{\n    # BEGIN reconciler searchd\n}\n"))
	live := []string{"ssl_cert = /c.pem", "listen = 9443:https"}
	f.Fuzz(func(t *testing.T, src []byte) {
		plain, _, err := searchdBlock.Remove(src)
		if err != nil {
			return
		}
		out, err := setSearchd(src, live, "9443")
		if err != nil {
			return
		}
		back, removed, err := searchdBlock.Remove(out)
		if err != nil || !removed {
			t.Fatalf("remove after insert: removed %v, %v\n%q", removed, err, out)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("insert then remove changed the file:\n%q\n%q", plain, back)
		}
		again, err := setSearchd(out, live, "9443")
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("inserting twice is not idempotent: %v\n%q\n%q", err, out, again)
		}
	})
}
