package local

import "testing"

// SetKEKChangeHook calls f after each step of every KEK change until the
// test ends (or f is nil): an error f returns is the step's error, and a
// panic stands for a crash.
func SetKEKChangeHook(t testing.TB, f func(step string) error) {
	kekChangeHook = f
	t.Cleanup(func() { kekChangeHook = nil })
}
