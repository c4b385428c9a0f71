package cassandra

import (
	"bytes"
	"context"
	"github.com/reconciler-dev/reconciler/agent/installers/installertest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// fixture is a Cassandra node's configuration directory.
func fixture(t *testing.T, base, version string) (installers.Datastore, string) {
	t.Helper()
	dir := t.TempDir()
	conf := installertest.CopyFile(t, base, dir, "cassandra.yaml")
	return installers.Datastore{Type: "cassandra", Version: version, ConfigDir: dir, Port: 9042, User: installertest.CurrentUser(t)}, conf
}

var passwordLine = regexp.MustCompile(`(_password: )"[0-9a-f]{64}"`)

func TestRenderedConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name, base, version, min string
		require                  bool
		docs                     string
	}{
		{"4.0-pkcs12-tls1.2-optional", "cassandra.yaml", "4.0", "1.2", false, "documented-options-4.0.txt"},
		{"4.0-pkcs12-tls1.3-required", "cassandra.yaml", "4.0.11", "1.3", true, "documented-options-4.0.txt"},
		{"4.1-pem-tls1.2-required", "cassandra.yaml", "4.1", "1.2", true, "documented-options-4.1.txt"},
		{"4.1-pem-tls1.3-optional", "cassandra.yaml", "4.1.5", "1.3", false, "documented-options-4.1.txt"},
		{"5.0-pem-appended-crlf", "cassandra-crlf-no-client.yaml", "5.0", "", true, "documented-options-4.1.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, conf := fixture(t, tc.base, tc.version)
			if _, err := New(ds).Install(context.Background(), installertest.NewBundle(t, tc.min, tc.require)); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(conf)
			stable := bytes.ReplaceAll(got, []byte(ds.ConfigDir), []byte("/etc/cassandra"))
			stable = passwordLine.ReplaceAll(stable, []byte(`${1}"$$KEYSTORE_PASSWORD"`))
			installertest.Golden(t, tc.name+".yaml", stable)
			installertest.CheckDocumented(t, got, "client_encryption_options", installertest.Documented(t, tc.docs))
		})
	}
}

func TestStoresCassandraCanRead(t *testing.T) {
	t.Run("4.1 PEM", func(t *testing.T) {
		ds, _ := fixture(t, "cassandra.yaml", "4.1")
		b := installertest.NewBundle(t, "", false)
		if _, err := New(ds).Install(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		keystore, _ := os.ReadFile(filepath.Join(ds.ConfigDir, KeystorePEM))
		// PEMBasedSslContextFactory reads PKCS #8 only, and the chain from
		// the same file.
		if !bytes.HasPrefix(keystore, []byte("-----BEGIN PRIVATE KEY-----\n")) || !bytes.Contains(keystore, b.CertPEM) || !bytes.Contains(keystore, b.ChainPEM) {
			t.Errorf("keystore.pem is not a PKCS #8 key followed by the certificate chain")
		}
		truststore, _ := os.ReadFile(filepath.Join(ds.ConfigDir, TruststorePEM))
		if !bytes.Equal(truststore, b.ChainPEM) {
			t.Error("truststore.pem is not the chain")
		}
		if info := installertest.Stat(t, filepath.Join(ds.ConfigDir, KeystorePEM)); info.Mode().Perm() != 0o600 {
			t.Errorf("keystore mode %v, want 0600", info.Mode().Perm())
		}
	})
	t.Run("4.0 PKCS12", func(t *testing.T) {
		ds, conf := fixture(t, "cassandra.yaml", "4.0")
		b := installertest.NewBundle(t, "", false)
		if _, err := New(ds).Install(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		pass, _ := os.ReadFile(filepath.Join(ds.ConfigDir, KeystorePassword))
		password := strings.TrimSpace(string(pass))
		if len(password) != 64 {
			t.Fatalf("password of %d characters, want 64 random hex", len(password))
		}
		cfg, _ := os.ReadFile(conf)
		if !bytes.Contains(cfg, []byte(`keystore_password: "`+password+`"`)) {
			t.Error("cassandra.yaml does not carry the keystore password")
		}
		ks, _ := os.ReadFile(filepath.Join(ds.ConfigDir, KeystoreP12))
		_, cert, chain, err := pkcs12.DecodeChain(ks, password)
		leaf, _ := installers.ParseCerts(b.CertPEM)
		if err != nil || cert == nil || !bytes.Equal(cert.Raw, leaf[0].Raw) || len(chain) != 1 {
			t.Errorf("keystore does not decode to the certificate and chain: %v", err)
		}
		ts, _ := os.ReadFile(filepath.Join(ds.ConfigDir, TruststoreP12))
		if certs, err := pkcs12.DecodeTrustStore(ts, password); err != nil || len(certs) != 1 {
			t.Errorf("truststore: %d certificates, %v", len(certs), err)
		}
		for _, name := range []string{KeystorePassword, KeystoreP12} {
			info := installertest.Stat(t, filepath.Join(ds.ConfigDir, name))
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", name, info.Mode().Perm())
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
				t.Errorf("%s uid %d, want the datastore user's", name, st.Uid)
			}
		}
	})
}

func TestInstallThenRemoveRestoresTheFile(t *testing.T) {
	for _, tc := range []struct{ base, version string }{
		{"cassandra.yaml", "4.0"}, {"cassandra.yaml", "4.1"}, {"cassandra-crlf-no-client.yaml", "5.0"},
	} {
		t.Run(tc.base+"@"+tc.version, func(t *testing.T) {
			ds, conf := fixture(t, tc.base, tc.version)
			orig, _ := os.ReadFile(conf)
			in := New(ds)
			if _, err := in.Install(context.Background(), installertest.NewBundle(t, "1.2", true)); err != nil {
				t.Fatal(err)
			}
			res, err := in.Remove(context.Background())
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
				if e.Name() != "cassandra.yaml" {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

func TestReinstallIsANoOpWithTheSameOutcome(t *testing.T) {
	for _, version := range []string{"4.0", "4.1"} {
		t.Run(version, func(t *testing.T) {
			ds, conf := fixture(t, "cassandra.yaml", version)
			in := New(ds)
			b := installertest.NewBundle(t, "1.2", true)
			first, err := in.Install(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(ds.ConfigDir)
			before := map[string]os.FileInfo{}
			for _, e := range entries {
				before[e.Name()] = installertest.Stat(t, filepath.Join(ds.ConfigDir, e.Name()))
			}
			second, err := in.Install(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(first, second); diff != "" {
				t.Errorf("second install (-first +second):\n%s", diff)
			}
			for name, info := range before {
				if !installertest.SameFile(t, info, filepath.Join(ds.ConfigDir, name)) {
					t.Errorf("a no-op install rewrote %s", name)
				}
			}
			_ = conf
		})
	}
}

func TestRotationIsPickedUpByCassandra(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		reload        []string
		want          string
		wantErr       string
	}{
		{"4.1 hot reload", "4.1", nil, "every 10 minutes", ""},
		{"4.0 hot reload keeps the password", "4.0", nil, "every 10 minutes", ""},
		{"reload command applies it at once", "4.1", []string{"true"}, "reloaded its stores", ""},
		{"failed reload command rolls back", "4.0", []string{"false"}, "", "reload the stores"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, conf := fixture(t, "cassandra.yaml", tc.version)
			ds.ReloadCommand = tc.reload
			if _, err := New(ds).Install(context.Background(), installertest.NewBundle(t, "1.2", true)); err != nil {
				t.Fatal(err)
			}
			confBefore, _ := os.ReadFile(conf)
			storesBefore := readAll(t, ds.ConfigDir)
			logs, logOpt := logBuffer()
			next := installertest.NewBundle(t, "1.2", true)
			res, err := New(ds, logOpt).Install(context.Background(), next)
			installertest.AssertNoKey(t, "the log", logs.String(), next)
			if pass, _ := os.ReadFile(filepath.Join(ds.ConfigDir, KeystorePassword)); len(pass) > 0 && strings.Contains(logs.String(), strings.TrimSpace(string(pass))) {
				t.Error("the log holds the keystore password")
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				if diff := cmp.Diff(storesBefore, readAll(t, ds.ConfigDir)); diff != "" {
					t.Errorf("files after a failed reload (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != installers.Reloaded || !strings.Contains(res.Message, tc.want) {
				t.Errorf("rotation: %s %q, want Reloaded saying %q", res.Outcome, res.Message, tc.want)
			}
			confAfter, _ := os.ReadFile(conf)
			if !bytes.Equal(confBefore, confAfter) {
				t.Error("a rotation changed cassandra.yaml (Cassandra reloads stores, not its configuration)")
			}
		})
	}
}

func TestFailedRestartRollsBackAndCarriesTheOutput(t *testing.T) {
	ds, conf := fixture(t, "cassandra.yaml", "4.0")
	orig, _ := os.ReadFile(conf)
	ds.AllowRestart = true
	ds.RestartCommand = installertest.Script(t, "cat '"+conf+"' >&2; echo 'Exception (org.apache.cassandra.exceptions.ConfigurationException) encountered during startup: Invalid yaml' >&2; exit 3")
	logs, logOpt := logBuffer()
	b := installertest.NewBundle(t, "1.2", true)
	_, err := New(ds, logOpt).Install(context.Background(), b)
	if err == nil {
		t.Fatal("install with a failing restart succeeded")
	}
	if !strings.Contains(err.Error(), "Invalid yaml") {
		t.Errorf("error %q lacks Cassandra's message", err)
	}
	if strings.Contains(err.Error(), "keystore_password: \"") && !strings.Contains(err.Error(), "keystore_password: \"[redacted]\"") {
		t.Error("the error holds the keystore password")
	}
	installertest.AssertNoKey(t, "the error", err.Error(), b)
	installertest.AssertNoKey(t, "the log", logs.String(), b)
	got, _ := os.ReadFile(conf)
	if diff := cmp.Diff(string(orig), string(got)); diff != "" {
		t.Errorf("cassandra.yaml after rollback (-original +got):\n%s", diff)
	}
	for _, name := range []string{KeystoreP12, TruststoreP12, KeystorePassword} {
		if _, err := os.Stat(filepath.Join(ds.ConfigDir, name)); !os.IsNotExist(err) {
			t.Errorf("%s survived the rollback", name)
		}
	}
}

func TestUpgradeTo41SwitchesToPEM(t *testing.T) {
	ds, _ := fixture(t, "cassandra.yaml", "4.0")
	b := installertest.NewBundle(t, "1.2", true)
	if _, err := New(ds).Install(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	ds.Version = "4.1"
	res, err := New(ds).Install(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != installers.RestartRequired {
		t.Errorf("outcome %s, want RestartRequired", res.Outcome)
	}
	for _, name := range []string{KeystoreP12, TruststoreP12, KeystorePassword, KeystoreP12 + installers.PreviousSuffix, KeystorePassword + installers.PreviousSuffix} {
		if _, err := os.Stat(filepath.Join(ds.ConfigDir, name)); !os.IsNotExist(err) {
			t.Errorf("%s outlived the switch to PEM", name)
		}
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct{ name, version, conf, wantErr string }{
		{"Cassandra 3.11", "3.11", "", "unsupported version 3.11"},
		{"no version", "", "", "want major.minor"},
		{"entry twice", "4.1", "client_encryption_options:\n  enabled: false\nclient_encryption_options:\n  enabled: false\n", "appears twice"},
		{"unterminated block", "4.1", "# BEGIN reconciler client_encryption_options\nclient_encryption_options:\n  enabled: true\n", "without its END"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "cassandra.yaml")
			if tc.conf == "" {
				installertest.CopyFile(t, "cassandra.yaml", dir, "cassandra.yaml")
			} else {
				os.WriteFile(conf, []byte(tc.conf), 0o644)
			}
			orig, _ := os.ReadFile(conf)
			_, err := New(installers.Datastore{Version: tc.version, ConfigDir: dir}).Install(context.Background(), installertest.NewBundle(t, "", false))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
			got, _ := os.ReadFile(conf)
			entries, _ := os.ReadDir(dir)
			if !bytes.Equal(orig, got) || len(entries) != 1 {
				t.Error("a refused install changed the host")
			}
		})
	}
}

func FuzzClientEncryptionBlock(f *testing.F) {
	for _, name := range []string{"cassandra.yaml", "cassandra-crlf-no-client.yaml"} {
		data, _ := os.ReadFile(filepath.Join("testdata", name))
		f.Add(data)
	}
	f.Add([]byte("client_encryption_options: {enabled: false}"))
	f.Add([]byte("a: 1\nclient_encryption_options:\n- x\n# c\n  y: 2\nb: 3\n"))
	f.Add([]byte("#| client_encryption_options:\n"))
	live := []string{"client_encryption_options:", "  enabled: true"}
	f.Fuzz(func(t *testing.T, src []byte) {
		plain, _, err := clientBlock.Remove(src)
		if err != nil {
			return
		}
		out, err := setClientEncryption(src, live)
		if err != nil {
			return
		}
		back, removed, err := clientBlock.Remove(out)
		if err != nil || !removed {
			t.Fatalf("remove after insert: removed %v, %v\n%q", removed, err, out)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("insert then remove changed the file:\n%q\n%q", plain, back)
		}
		again, err := setClientEncryption(out, live)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("inserting twice is not idempotent: %v\n%q\n%q", err, out, again)
		}
	})
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = string(data)
	}
	return out
}
