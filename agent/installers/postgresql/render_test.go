package postgresql

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestRenderConf(t *testing.T) {
	for _, tc := range []struct {
		name, min string
		major     int
		golden    string
	}{
		{name: "TLS 1.2 minimum on 15", min: "1.2", major: 15, golden: "conf-15-tls12.golden"},
		{name: "empty minimum means 1.2", min: "", major: 15, golden: "conf-15-tls12.golden"},
		{name: "TLS 1.3 minimum on 16", min: "1.3", major: 16, golden: "conf-16-tls13.golden"},
		{name: "11 has no ssl_min_protocol_version", min: "1.3", major: 11, golden: "conf-11.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderConf("/etc/postgresql/15/main/conf.d", tc.min, tc.major)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, got)
		})
	}
	t.Run("quotes in the path are doubled", func(t *testing.T) {
		got, err := RenderConf("/srv/o'brien", "1.2", 15)
		if err != nil {
			t.Fatal(err)
		}
		if want := "ssl_cert_file = '/srv/o''brien/reconciler-server.crt'"; !strings.Contains(string(got), want) {
			t.Errorf("fragment\n%s\nlacks %s", got, want)
		}
	})
	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		if _, err := RenderConf("/x", "1.1", 15); err == nil {
			t.Error("RenderConf accepted TLS 1.1")
		}
	})
}

func TestRenderHBA(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join("testdata", "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	required, err := RenderHBA(orig, true)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pg_hba-required.golden", required)

	for _, tc := range []struct {
		name    string
		in      []byte
		require bool
		want    []byte
	}{
		{name: "requiring twice keeps one block", in: required, require: true, want: required},
		{name: "not requiring takes the block out", in: required, require: false, want: orig},
		{name: "not requiring leaves a file without a block alone", in: orig, require: false, want: orig},
		{name: "a block moved down by hand goes back to the top",
			in: append(append([]byte{}, orig...), required[:len(hbaBlock)]...), require: true, want: required},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderHBA(tc.in, tc.require)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(tc.want), string(got)); diff != "" {
				t.Errorf("pg_hba.conf (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a block without its end is an error", func(t *testing.T) {
		broken := append([]byte(BeginMarker+"\nhostnossl all all 0.0.0.0/0 reject\n"), orig...)
		if _, err := RenderHBA(broken, false); err == nil || !strings.Contains(err.Error(), "without") {
			t.Errorf("RenderHBA error %v, want one about the missing end", err)
		}
	})
}

func TestParseMajor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{in: "15", want: 15}, {in: "15.4", want: 15}, {in: "9.6.24", want: 9}, {in: "16beta1", want: 16},
		{in: "", bad: true}, {in: "latest", bad: true},
	} {
		got, err := parseMajor(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseMajor(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
