package cassandra

import (
	"bytes"

	"github.com/reconciler-dev/reconciler/agent/installers/installertest"
)

// logBuffer returns a buffer that receives the installer's debug log as JSON.
func logBuffer() (*bytes.Buffer, Option) {
	var buf bytes.Buffer
	return &buf, WithLogger(installertest.SlogJSON(&buf))
}
