package installers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
)

// maxOutput bounds the command output an error carries: enough for the
// datastore's own message, not a log file.
const maxOutput = 4 << 10

// RunCommand runs argv (no shell) and, when it fails, returns an error carrying
// the end of its standard error (or standard output when that is empty),
// with every secret and anything shaped like a private key cut out.
func RunCommand(ctx context.Context, argv []string, secrets ...[]byte) error {
	if len(argv) == 0 {
		return errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	out := stderr.Bytes()
	if len(bytes.TrimSpace(out)) == 0 {
		out = stdout.Bytes()
	}
	msg := redact(out, secrets...)
	if len(msg) > maxOutput {
		msg = "…" + msg[len(msg)-maxOutput:]
	}
	if msg == "" {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	return fmt.Errorf("run %s: %w: %s", argv[0], err, msg)
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 64 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.b }

var privateKeyPEM = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`)

// redact removes private-key PEM blocks, every secret, and every long line
// of a secret (a command that prints part of a key file must not leak it).
func redact(out []byte, secrets ...[]byte) string {
	out = privateKeyPEM.ReplaceAll(out, []byte("[private key redacted]"))
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		out = bytes.ReplaceAll(out, s, []byte("[redacted]"))
		for _, line := range bytes.Split(s, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) >= 16 && !bytes.HasPrefix(line, []byte("-----")) {
				out = bytes.ReplaceAll(out, line, []byte("[redacted]"))
			}
		}
	}
	return string(bytes.TrimSpace(out))
}
