//go:build unix

// Command measure runs a command once and prints, as one line of JSON, its
// wall time and peak memory (the maximum resident set size the kernel
// recorded for it), so that bench/run.sh needs neither GNU time nor a
// shell's time keyword, whose output differs from system to system.
//
// The command's standard output goes to -stdout (default: discarded) and
// its standard error to -stderr (default: measure's own). measure exits 0
// when the command's exit status is one of -ok, and 1 otherwise; it prints
// the JSON line in both cases.
//
// Usage:
//
//	measure [-ok 0] [-stdout FILE] [-stderr FILE] -- COMMAND [ARG...]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is the JSON line measure prints.
type Result struct {
	Command     []string `json:"command"`
	ExitCode    int      `json:"exit_code"` // -1 when killed by a signal
	WallSeconds float64  `json:"wall_seconds"`
	UserSeconds float64  `json:"user_seconds"`
	SysSeconds  float64  `json:"sys_seconds"`
	MaxRSSKiB   int64    `json:"max_rss_kib"`
}

func main() {
	ok := flag.String("ok", "0", "comma-separated exit statuses that count as success")
	stdout := flag.String("stdout", os.DevNull, "file that receives the command's standard output")
	stderr := flag.String("stderr", "", "file that receives the command's standard error (default: measure's own)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: measure [-ok 0,2] [-stdout FILE] [-stderr FILE] -- COMMAND [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	okCodes, err := parseCodes(*ok)
	if err != nil || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	res, err := measure(flag.Args(), *stdout, *stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "measure: %v\n", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "measure: encode result: %v\n", err)
		os.Exit(1)
	}
	if !slices.Contains(okCodes, res.ExitCode) {
		fmt.Fprintf(os.Stderr, "measure: %s exited with status %d (expected one of %s)\n", res.Command[0], res.ExitCode, *ok)
		os.Exit(1)
	}
}

// measure runs argv and returns what it cost. A command that runs and exits
// with any status is a result, not an error; the error is for a command
// that cannot be started or files that cannot be opened.
func measure(argv []string, stdoutPath, stderrPath string) (Result, error) {
	out, err := os.Create(stdoutPath)
	if err != nil {
		return Result{}, fmt.Errorf("open stdout file: %w", err)
	}
	defer out.Close()
	var errw io.Writer = os.Stderr
	if stderrPath != "" {
		f, err := os.Create(stderrPath)
		if err != nil {
			return Result{}, fmt.Errorf("open stderr file: %w", err)
		}
		defer f.Close()
		errw = f
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, errw
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return Result{}, fmt.Errorf("run %s: %w", argv[0], err)
	}

	ps := cmd.ProcessState
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return Result{}, fmt.Errorf("read resource usage of %s: not available on %s", argv[0], runtime.GOOS)
	}
	return Result{
		Command:     argv,
		ExitCode:    ps.ExitCode(),
		WallSeconds: wall.Seconds(),
		UserSeconds: ps.UserTime().Seconds(),
		SysSeconds:  ps.SystemTime().Seconds(),
		MaxRSSKiB:   maxRSSKiB(ru),
	}, nil
}

// maxRSSKiB converts ru_maxrss to KiB: Linux and the BSDs report KiB,
// macOS reports bytes.
func maxRSSKiB(ru *syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}

func parseCodes(s string) ([]int, error) {
	var codes []int
	for f := range strings.SplitSeq(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("parse exit status %q: %w", f, err)
		}
		codes = append(codes, c)
	}
	return codes, nil
}
