package specs

import (
	"fmt"
	"strings"
)

// Error is one problem with an instance file. It says where (File, Line,
// Column, and the dotted Field path when the problem belongs to a field),
// what is wrong (Message) and how to fix it (Fix, when there is a fix to
// suggest).
type Error struct {
	File    string
	Line    int // 1-based; 0 when the problem is the whole file
	Column  int // 1-based; 0 when unknown
	Field   string
	Message string
	Fix     string
}

// Error formats the problem as file:line:column: field: message; fix.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Detail())
	return b.String()
}

// Detail is the problem without its position: field, message and fix.
func (e *Error) Detail() string {
	var b strings.Builder
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// ErrorList is every problem found in one parse, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}
