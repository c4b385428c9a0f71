package mongodb

import (
	"bytes"
	"context"
	"github.com/reconciler-dev/reconciler/agent/installers/installertest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// fixture is a mongod host in a temporary directory.
func fixture(t *testing.T, base, version string) (installers.Datastore, string) {
	t.Helper()
	dir := t.TempDir()
	conf := installertest.CopyFile(t, base, dir, "mongod.conf")
	return installers.Datastore{Type: "mongodb", Version: version, ConfigDir: dir, Port: 27017, User: installertest.CurrentUser(t)}, conf
}

func TestRenderedConfiguration(t *testing.T) {
	docs := installertest.Documented(t, "documented-options.txt")
	for _, tc := range []struct {
		name, base, version, min string
		require                  bool
	}{
		{"4.4-tls1.2-prefer", "mongod.conf", "4.4", "1.2", false},
		{"6.0-tls1.2-require", "mongod.conf", "6.0", "1.2", true},
		{"6.0-tls1.3-require", "mongod.conf", "6.0.14", "1.3", true},
		{"7.0-replaces-disabled-tls", "mongod-tls-disabled.conf", "7.0", "1.2", true},
		{"6.0-adds-net", "mongod-no-net.conf", "6.0", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, conf := fixture(t, tc.base, tc.version)
			if _, err := New(ds).Install(context.Background(), installertest.NewBundle(t, tc.min, tc.require)); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(conf)
			installertest.Golden(t, tc.name+".conf", bytes.ReplaceAll(got, []byte(ds.ConfigDir), []byte("/etc/mongodb")))
			installertest.CheckDocumented(t, got, "net.tls", docs)
		})
	}
}

func TestInstallThenRemoveRestoresTheFile(t *testing.T) {
	for _, base := range []string{"mongod.conf", "mongod-tls-disabled.conf", "mongod-no-net.conf"} {
		t.Run(base, func(t *testing.T) {
			ds, conf := fixture(t, base, "6.0")
			orig, _ := os.ReadFile(conf)
			in := New(ds)
			res, err := in.Install(context.Background(), installertest.NewBundle(t, "1.2", true))
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != installers.RestartRequired {
				t.Errorf("turning TLS on: outcome %s, want RestartRequired", res.Outcome)
			}
			res, err = in.Remove(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != installers.RestartRequired {
				t.Errorf("turning TLS off: outcome %s, want RestartRequired", res.Outcome)
			}
			got, _ := os.ReadFile(conf)
			if diff := cmp.Diff(string(orig), string(got)); diff != "" {
				t.Errorf("after remove (-original +got):\n%s", diff)
			}
			entries, _ := os.ReadDir(ds.ConfigDir)
			for _, e := range entries {
				if e.Name() != "mongod.conf" {
					t.Errorf("left behind: %s", e.Name())
				}
			}
			if info := installertest.Stat(t, conf); info.Mode().Perm() != 0o640 {
				t.Errorf("configuration mode %v, want its original 0640", info.Mode().Perm())
			}
		})
	}
}

func TestReinstallIsANoOpWithTheSameOutcome(t *testing.T) {
	ds, conf := fixture(t, "mongod.conf", "6.0")
	ds.AllowRestart, ds.RestartCommand = true, installertest.Script(t, "exit 0")
	in := New(ds)
	b := installertest.NewBundle(t, "1.2", true)
	first, err := in.Install(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	before := installertest.Stat(t, conf)
	key := installertest.Stat(t, filepath.Join(ds.ConfigDir, CertificateKeyFile))
	ds.RestartCommand = installertest.Script(t, "echo must not run >&2; exit 1")
	in.DS = ds
	second, err := in.Install(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second install (-first +second):\n%s", diff)
	}
	if first.Outcome != installers.Restarted {
		t.Errorf("outcome %s, want Restarted", first.Outcome)
	}
	if !installertest.SameFile(t, before, conf) || !installertest.SameFile(t, key, filepath.Join(ds.ConfigDir, CertificateKeyFile)) {
		t.Error("a no-op install rewrote files")
	}
	// A fresh installer (the agent restarted) cannot know whether mongod
	// restarted since; it says so instead of claiming success.
	fresh, err := New(ds).Install(context.Background(), b)
	if err != nil || fresh.Outcome != installers.RestartRequired {
		t.Errorf("fresh installer: %v, %v; want RestartRequired", fresh, err)
	}
}

func TestKeyFileIsPrivateAndOwnedByTheDatastoreUser(t *testing.T) {
	ds, _ := fixture(t, "mongod.conf", "6.0")
	b := installertest.NewBundle(t, "", false)
	if _, err := New(ds).Install(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	key := installertest.Stat(t, filepath.Join(ds.ConfigDir, CertificateKeyFile))
	if key.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", key.Mode().Perm())
	}
	if st, ok := key.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		t.Errorf("key file uid %d, want the datastore user's %d", st.Uid, os.Getuid())
	}
	if ca := installertest.Stat(t, filepath.Join(ds.ConfigDir, CAFile)); ca.Mode().Perm() != 0o644 {
		t.Errorf("CA file mode %v, want 0644", ca.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(ds.ConfigDir, CertificateKeyFile))
	if !bytes.Contains(data, []byte("PRIVATE KEY")) || !bytes.Contains(data, b.CertPEM) {
		t.Error("the certificate key file needs the key and the certificate")
	}
}

func TestFailedRestartRollsBackAndCarriesTheOutput(t *testing.T) {
	ds, conf := fixture(t, "mongod.conf", "6.0")
	orig, _ := os.ReadFile(conf)
	keyFile := filepath.Join(ds.ConfigDir, CertificateKeyFile)
	// The command prints the key file, as a careless wrapper might, then
	// mongod's own complaint.
	ds.AllowRestart, ds.RestartCommand = true, installertest.Script(t, "cat '"+keyFile+"' >&2; echo 'mongod: Failed global initialization: BadValue: bad tls' >&2; exit 48")
	logs, logOpt := logBuffer()
	b := installertest.NewBundle(t, "1.2", true)
	_, err := New(ds, logOpt).Install(context.Background(), b)
	if err == nil {
		t.Fatal("install with a failing restart succeeded")
	}
	if !strings.Contains(err.Error(), "BadValue: bad tls") {
		t.Errorf("error %q lacks the datastore's message", err)
	}
	installertest.AssertNoKey(t, "the error", err.Error(), b)
	installertest.AssertNoKey(t, "the log", logs.String(), b)
	got, _ := os.ReadFile(conf)
	if diff := cmp.Diff(string(orig), string(got)); diff != "" {
		t.Errorf("configuration after rollback (-original +got):\n%s", diff)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Error("the key file survived the rollback")
	}
	if info := installertest.Stat(t, conf); info.Mode().Perm() != 0o640 {
		t.Errorf("configuration mode after rollback %v, want 0640", info.Mode().Perm())
	}
}

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		reload        []string
		want          installers.Outcome
		wantErr       string
	}{
		{"5.0 with a reload command rotates live", "5.0", []string{"true"}, installers.Reloaded, ""},
		{"6.0 without a reload command needs a restart", "6.0", nil, installers.RestartRequired, ""},
		{"4.4 has no rotateCertificates", "4.4", []string{"true"}, installers.RestartRequired, ""},
		{"failed rotation rolls back", "7.0", []string{"false"}, "", "rotate certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, conf := fixture(t, "mongod.conf", tc.version)
			ds.ReloadCommand = tc.reload
			first := installertest.NewBundle(t, "1.2", true)
			if _, err := New(ds).Install(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			confBefore, _ := os.ReadFile(conf)
			keyBefore, _ := os.ReadFile(filepath.Join(ds.ConfigDir, CertificateKeyFile))
			logs, logOpt := logBuffer()
			next := installertest.NewBundle(t, "1.2", true)
			res, err := New(ds, logOpt).Install(context.Background(), next)
			installertest.AssertNoKey(t, "the log", logs.String(), next)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				keyAfter, _ := os.ReadFile(filepath.Join(ds.ConfigDir, CertificateKeyFile))
				if !bytes.Equal(keyBefore, keyAfter) {
					t.Error("the previous key file was not restored")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.want {
				t.Errorf("outcome %s (%s), want %s", res.Outcome, res.Message, tc.want)
			}
			confAfter, _ := os.ReadFile(conf)
			if !bytes.Equal(confBefore, confAfter) {
				t.Error("a rotation changed mongod.conf")
			}
			if _, err := os.Stat(filepath.Join(ds.ConfigDir, CertificateKeyFile+installers.PreviousSuffix)); !os.IsNotExist(err) {
				t.Error("the rotated-out key was kept on disk")
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, base, version, wantErr string
		bundle                       func(installers.Bundle) installers.Bundle
	}{
		{"net.ssl in the file", "", "6.0", "net.ssl is set on line 3", nil},
		{"MongoDB 4.0", "mongod.conf", "4.0", "needs MongoDB 4.2", nil},
		{"no version", "mongod.conf", "", "want major.minor", nil},
		{"key of another certificate", "mongod.conf", "6.0", "does not match the certificate", func(b installers.Bundle) installers.Bundle {
			b.Key = installertest.NewBundle(t, "", false).Key
			return b
		}},
		{"TLS 1.1", "mongod.conf", "6.0", "minVersion", func(b installers.Bundle) installers.Bundle { b.MinVersion = "1.1"; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "mongod.conf")
			if tc.base == "" {
				os.WriteFile(conf, []byte("net:\n  port: 27017\n  ssl:\n    mode: disabled\n"), 0o644)
			} else {
				installertest.CopyFile(t, tc.base, dir, "mongod.conf")
			}
			orig, _ := os.ReadFile(conf)
			b := installertest.NewBundle(t, "", false)
			if tc.bundle != nil {
				b = tc.bundle(b)
			}
			ds := installers.Datastore{Version: tc.version, ConfigDir: dir}
			_, err := New(ds).Install(context.Background(), b)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
			installertest.AssertNoKey(t, "the error", err.Error(), b)
			got, _ := os.ReadFile(conf)
			entries, _ := os.ReadDir(dir)
			if !bytes.Equal(orig, got) || len(entries) != 1 {
				t.Error("a refused install changed the host")
			}
		})
	}
}

func TestRemoveWithNothingInstalled(t *testing.T) {
	ds, conf := fixture(t, "mongod.conf", "6.0")
	before := installertest.Stat(t, conf)
	res, err := New(ds).Remove(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != installers.Reloaded || !installertest.SameFile(t, before, conf) {
		t.Errorf("remove on a plaintext host: %+v", res)
	}
}

func FuzzTLSBlock(f *testing.F) {
	for _, name := range []string{"mongod.conf", "mongod-tls-disabled.conf", "mongod-no-net.conf"} {
		data, _ := os.ReadFile(filepath.Join("testdata", name))
		f.Add(data)
	}
	f.Add([]byte("net:\r\n  port: 1\r\n  tls:\r\n    mode: disabled"))
	f.Add([]byte("net:"))
	f.Add([]byte(""))
	f.Add([]byte("net:\n  tls: {mode: disabled}\n# BEGIN reconciler net.tls\n"))
	live := func(step string) []string { return []string{"tls:", step + "mode: requireTLS"} }
	f.Fuzz(func(t *testing.T, src []byte) {
		plain, _, err := tlsBlock.Remove(src)
		if err != nil {
			return
		}
		out, err := setTLS(src, live)
		if err != nil {
			return
		}
		back, removed, err := tlsBlock.Remove(out)
		if err != nil || !removed {
			t.Fatalf("remove after insert: removed %v, %v\n%q", removed, err, out)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("insert then remove changed the file:\n%q\n%q", plain, back)
		}
		again, err := setTLS(out, live)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("inserting twice is not idempotent: %v\n%q\n%q", err, out, again)
		}
	})
}
