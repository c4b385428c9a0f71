package controller

import (
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

func TestRenewalAtTwoThirdsWithAStableJitter(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	life := 30 * 24 * time.Hour
	for _, serial := range []string{"01", "3a:7f:00:c2", "ff:ee:dd"} {
		cert := &store.Certificate{Serial: serial, NotBefore: nb, NotAfter: nb.Add(life)}
		if renewalDue(cert, nb.Add(life/2)) {
			t.Errorf("%s: due at half its lifetime", serial)
		}
		if !renewalDue(cert, nb.Add(life*2/3)) {
			t.Errorf("%s: not due at two thirds of its lifetime", serial)
		}
		if renewalDue(cert, nb.Add(life*2/3-life/20-time.Minute)) {
			t.Errorf("%s: due before the jitter window", serial)
		}
		a, b := renewalDue(cert, nb.Add(life*2/3-life/40)), renewalDue(cert, nb.Add(life*2/3-life/40))
		if a != b {
			t.Errorf("%s: the same moment gives two answers", serial)
		}
	}
	if !renewalDue(&store.Certificate{Serial: "01", NotBefore: nb, NotAfter: nb}, nb) {
		t.Error("a certificate without a lifetime is not due")
	}
}

func TestBackoffGrowsAndStaysBounded(t *testing.T) {
	prevMax := time.Duration(0)
	for n := 1; n <= 20; n++ {
		bound := min(time.Second<<min(n-1, 9), 5*time.Minute)
		for range 50 {
			d := backoff(n)
			if d < bound/2 || d > bound {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, bound/2, bound)
			}
		}
		if bound < prevMax {
			t.Fatalf("backoff bound shrank at %d", n)
		}
		prevMax = bound
	}
}
