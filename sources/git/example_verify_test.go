package git_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/reconciler-dev/reconciler/sources/git"
	"github.com/reconciler-dev/reconciler/sources/signature"
)

func ExampleSource_Verify() {
	ctx := context.Background()
	src, err := git.Clone(ctx, "https://git.example.com/platform/fleet.git")
	if err != nil {
		log.Fatal(err)
	}
	v, err := signature.New(signature.Config{AllowedSigners: "/etc/reconciler/allowed_signers"})
	if err != nil {
		log.Fatal(err)
	}
	lastApplied := "3f2a9c1e4b5d6a7f8091a2b3c4d5e6f708192a3b"
	report, err := src.Verify(ctx, v, signature.ModeStrict, lastApplied, "main")
	var refused *signature.Error
	switch {
	case errors.Is(err, git.ErrRewritten):
		log.Fatalf("main was force-pushed; review it before accepting: %v", err)
	case errors.As(err, &refused):
		log.Fatalf("commit %s refused: %v", refused.Commit, err)
	case err != nil:
		log.Fatal(err)
	}
	for _, s := range report.Signers {
		fmt.Printf("%.7s signed by %s (%s)\n", s.Commit, s.Principal, s.Fingerprint)
	}
}
