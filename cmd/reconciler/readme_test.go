package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeTranscripts runs every "$ bin/reconciler ..." transcript of
// README.md and checks that each line it shows (but "...") is in the real
// output, so the README cannot drift from the code.
func TestReadmeTranscripts(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```text\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	ran := 0
	for _, b := range blocks {
		lines := strings.Split(strings.TrimRight(b[1], "\n"), "\n")
		if lines[0] == "$ reconciler diff --base origin/main" {
			// The merge-request transcript is TestDiffMergeRequest's
			// "disabling ssl in production is denied", run on a temporary
			// repository: compare with its golden file.
			checkTranscript(t, lines, "testdata/mr-disable-ssl.text", "FLEET", ".")
			ran++
			continue
		}
		cmdline, ok := strings.CutPrefix(lines[0], "$ bin/reconciler ")
		if !ok {
			continue
		}
		ran++
		args := strings.Fields(strings.ReplaceAll(cmdline, "examples/", "../../examples/"))
		_, out, errOut := reconcile(t, args...)
		out = strings.ReplaceAll(out+errOut, "../../examples/", "examples/")
		checkLines(t, lines, out)
	}
	if ran == 0 {
		t.Fatal("README.md has no transcript to check")
	}
}

// TestGitCredentialsStayOutOfOutput plants a canary token and makes the
// clone fail: neither the error nor the output may contain it.
func TestGitCredentialsStayOutOfOutput(t *testing.T) {
	const canary = "canary-token-5f3c9a1e"
	t.Setenv("RECONCILER_GIT_TOKEN", canary)
	t.Setenv("RECONCILER_GIT_PASSWORD", canary+"-password")
	code, out, errOut := reconcile(t, "diff", "https://127.0.0.1:1/fleet.git", "--git-cache-dir", t.TempDir(), "-o", "json")
	if code != 1 {
		t.Errorf("exit status %d, want 1 for an unreachable source", code)
	}
	if strings.Contains(out+errOut, canary) {
		t.Errorf("the token reached the output:\n%s%s", out, errOut)
	}
	if !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("the error does not name the remote:\n%s", errOut)
	}
}

func checkTranscript(t *testing.T, lines []string, golden, from, to string) {
	t.Helper()
	out, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines, strings.ReplaceAll(string(out), from, to))
}

// checkLines checks that every line shown after the command line, but
// "...", is in out.
func checkLines(t *testing.T, lines []string, out string) {
	t.Helper()
	for _, want := range lines[1:] {
		if strings.TrimSpace(want) == "..." {
			continue
		}
		if !strings.Contains(out, want) {
			t.Errorf("README shows %q for %q, but the command prints:\n%s", want, lines[0], out)
		}
	}
}
