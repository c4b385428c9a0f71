package confedit

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The configuration files are YAML that people wrote, with comments the
// installer must not lose, so entries are found by their lines rather than
// by a decode and re-encode (which would reflow the whole file).

// IndentOf is the number of leading spaces of a line; blank reports a line
// with nothing but white space, comment a line whose first non-space
// character is '#'.
func IndentOf(line []byte) (n int, blank, comment bool) {
	for n < len(line) && line[n] == ' ' {
		n++
	}
	rest := bytes.TrimSpace(line[n:])
	return n, len(rest) == 0, len(rest) > 0 && rest[0] == '#'
}

// IsKeyLine reports whether line is the mapping entry key at exactly
// indent spaces: the key, optional spaces, a colon, then nothing, a space
// or a tab.
func IsKeyLine(line []byte, indent int, key string) bool {
	n, _, _ := IndentOf(line)
	if n != indent {
		return false
	}
	rest := line[n:]
	if !bytes.HasPrefix(rest, []byte(key)) {
		return false
	}
	rest = bytes.TrimLeft(rest[len(key):], " ")
	return len(rest) > 0 && rest[0] == ':' && (len(rest) == 1 || rest[1] == ' ' || rest[1] == '\t')
}

// EntryRange finds the mapping entry key at indent spaces among
// lines[from:to]: its key line and every following line up to the last
// one indented deeper, comments included (blank lines and shallower
// comments in between belong to it; those after it belong to whatever
// follows). It is an error for the key to appear twice.
func EntryRange(src []byte, lines []LineSpan, from, to, indent int, key string) (first, last int, found bool, err error) {
	first = -1
	for i := from; i < to; i++ {
		if IsKeyLine(lines[i].Text(src), indent, key) {
			if first >= 0 {
				return 0, 0, false, fmt.Errorf("%s appears twice, on lines %d and %d", key, first+1, i+1)
			}
			first = i
		}
	}
	if first < 0 {
		return -1, -1, false, nil
	}
	last = first
	for i := first + 1; i < to; i++ {
		line := lines[i].Text(src)
		n, blank, comment := IndentOf(line)
		if comment && n > indent {
			last = i // a comment indented under the entry is the entry's
		}
		if blank || comment {
			continue
		}
		// A block sequence may sit at the key's own indentation.
		if n > indent || (n == indent && bytes.HasPrefix(line[n:], []byte("- "))) {
			last = i
			continue
		}
		break
	}
	return first, last, true, nil
}

// Quote writes s as a YAML double-quoted scalar (JSON strings are YAML).
func Quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
