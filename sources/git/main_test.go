package git_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them: a clone or fetch
// must not leave transport connections running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
