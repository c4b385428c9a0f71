//go:build !unix

package local

import (
	"context"
	"os"
)

// lockInUse is a no-op where there is no flock: ChangeKEK cannot tell
// whether a reconciler has the directory open, and the operator must stop
// it first.
func lockInUse(context.Context, string, bool) (*os.File, error) { return nil, nil }
