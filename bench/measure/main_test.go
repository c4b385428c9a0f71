//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMeasureReportsExitStatusAndOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	res, err := measure([]string{"sh", "-c", "echo hello; exit 3"}, out, "")
	if err != nil {
		t.Fatalf("measure: %v", err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", res.ExitCode)
	}
	if res.WallSeconds <= 0 || res.MaxRSSKiB <= 0 {
		t.Errorf("wall %v s, max RSS %d KiB: want both positive", res.WallSeconds, res.MaxRSSKiB)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "hello\n" {
		t.Errorf("stdout file = %q, want %q", data, "hello\n")
	}
}

func TestMeasureFailsWhenTheCommandCannotStart(t *testing.T) {
	if _, err := measure([]string{filepath.Join(t.TempDir(), "missing")}, os.DevNull, ""); err == nil {
		t.Fatal("measure a missing command: got nil error")
	}
}

func TestParseCodes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []int
		wantErr  bool
	}{
		{name: "one status", in: "0", want: []int{0}},
		{name: "list with spaces", in: "0, 2,3", want: []int{0, 2, 3}},
		{name: "not a number", in: "0,x", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCodes(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseCodes(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); !tc.wantErr && diff != "" {
				t.Errorf("parseCodes(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}
