package signature

import "fmt"

// Mode says which commits a revision must have signed before it is
// applied.
type Mode string

const (
	// ModeOff verifies nothing.
	ModeOff Mode = ""
	// ModeHead verifies the commit that is applied, and none below it:
	// its signature covers its whole tree, which is all that is applied.
	ModeHead Mode = "head"
	// ModeStrict verifies the commit that is applied and every commit
	// since the last applied one: those reachable from the new commit and
	// not from the last one, merges and the branches they bring in
	// included. So every change that reaches the fleet was signed, not
	// only its latest state.
	ModeStrict Mode = "strict"
)

// ParseMode returns the Mode s names: "" or "off", "head" or "strict".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "off":
		return ModeOff, nil
	case string(ModeHead), string(ModeStrict):
		return Mode(s), nil
	}
	return "", fmt.Errorf("parse verification mode: %q is not a mode: use off, head or strict", s)
}

// String returns the mode's name, "off" for ModeOff.
func (m Mode) String() string {
	if m == ModeOff {
		return "off"
	}
	return string(m)
}
