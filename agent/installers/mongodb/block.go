package mongodb

import (
	"bytes"
	"errors"
	"fmt"
)

// A managed block is the part of a configuration file the installer owns,
// between two marker comments. Whatever the block replaced is kept inside
// it as comment lines, so taking the block out restores the file byte for
// byte without any state outside the file:
//
//	# BEGIN reconciler <name>
//	# <note for people>
//	#| the original line, with its own line ending
//	#/ the original's last line when it had no line ending
//	live lines
//	# END reconciler <name>
//
// "+nl" or "+crlf" after the name on the BEGIN line records that a line
// ending was added before the block because the file did not end with one.
const (
	beginMarker = "# BEGIN reconciler"
	endMarker   = "# END reconciler"
	savedLine   = "#| "
	savedLast   = "#/ "
	addedNL     = " +nl"
	addedCRLF   = " +crlf"
)

// lineSpan is one line of a file, src[start:end], line ending included.
type lineSpan struct{ start, end int }

func splitLines(src []byte) []lineSpan {
	var lines []lineSpan
	for start := 0; start < len(src); {
		end := bytes.IndexByte(src[start:], '\n')
		if end < 0 {
			lines = append(lines, lineSpan{start, len(src)})
			break
		}
		lines = append(lines, lineSpan{start, start + end + 1})
		start += end + 1
	}
	return lines
}

// text is the line without its line ending.
func (l lineSpan) text(src []byte) []byte {
	return bytes.TrimRight(src[l.start:l.end], "\r\n")
}

// lineEnding is the file's line ending, judged by its first line.
func lineEnding(src []byte) string {
	if i := bytes.IndexByte(src, '\n'); i > 0 && src[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// block names one managed block of a file.
type block struct{ name string }

// marker reports whether line is this block's BEGIN or END marker, and
// the line ending a BEGIN marker says was added before the block.
func (b block) marker(line []byte) (begin, end bool, added string) {
	t := string(bytes.TrimLeft(line, " \t"))
	switch t {
	case beginMarker + " " + b.name:
		return true, false, ""
	case beginMarker + " " + b.name + addedNL:
		return true, false, "\n"
	case beginMarker + " " + b.name + addedCRLF:
		return true, false, "\r\n"
	case endMarker + " " + b.name:
		return false, true, ""
	}
	return false, false, ""
}

// find returns the line indexes of the block's BEGIN and END markers.
func (b block) find(src []byte, lines []lineSpan) (first, last int, ok bool, err error) {
	first, last = -1, -1
	for i, l := range lines {
		begin, end, _ := b.marker(l.text(src))
		switch {
		case begin && first >= 0:
			return 0, 0, false, fmt.Errorf("managed block %q: a second BEGIN marker on line %d", b.name, i+1)
		case begin:
			first = i
		case end && (first < 0 || last >= 0):
			return 0, 0, false, fmt.Errorf("managed block %q: END marker on line %d without its BEGIN", b.name, i+1)
		case end:
			last = i
		}
	}
	if first >= 0 && last < 0 {
		return 0, 0, false, fmt.Errorf("managed block %q: BEGIN marker on line %d without its END", b.name, first+1)
	}
	return first, last, first >= 0, nil
}

// remove returns src with the block taken out and the lines it replaced
// put back; changed is false when src has no such block.
func (b block) remove(src []byte) (out []byte, changed bool, err error) {
	lines := splitLines(src)
	first, last, ok, err := b.find(src, lines)
	if err != nil || !ok {
		return src, false, err
	}
	start := lines[first].start
	if _, _, added := b.marker(lines[first].text(src)); added != "" {
		if !bytes.HasSuffix(src[:start], []byte(added)) {
			return nil, false, errors.New("managed block " + b.name + ": the line ending added before it is gone")
		}
		start -= len(added)
	}
	var buf bytes.Buffer
	buf.Write(src[:start])
	for _, l := range lines[first+1 : last] {
		line := src[l.start:l.end]
		switch {
		case bytes.HasPrefix(line, []byte(savedLine)):
			buf.Write(line[len(savedLine):])
		case bytes.HasPrefix(line, []byte(savedLast)):
			buf.Write(bytes.TrimSuffix(line[len(savedLast):], []byte("\n")))
		}
	}
	buf.Write(src[lines[last].end:])
	return buf.Bytes(), true, nil
}

// splice returns src with src[start:end] (whole lines, or the empty
// range at the end of the file) replaced by the block: the replaced lines
// kept as comments, then live, each line prefixed with indent.
func (b block) splice(src []byte, start, end int, indent, note string, live []string) []byte {
	eol := lineEnding(src)
	var buf bytes.Buffer
	buf.Write(src[:start])
	flag := ""
	if start > 0 && src[start-1] != '\n' {
		buf.WriteString(eol)
		flag = addedNL
		if eol == "\r\n" {
			flag = addedCRLF
		}
	}
	buf.WriteString(indent + beginMarker + " " + b.name + flag + eol)
	buf.WriteString(indent + "# " + note + eol)
	orig := src[start:end]
	for _, l := range splitLines(orig) {
		line := orig[l.start:l.end]
		if bytes.HasSuffix(line, []byte("\n")) {
			buf.WriteString(savedLine)
			buf.Write(line)
		} else {
			buf.WriteString(savedLast)
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	for _, l := range live {
		buf.WriteString(indent + l + eol)
	}
	buf.WriteString(indent + endMarker + " " + b.name + eol)
	buf.Write(src[end:])
	return buf.Bytes()
}

// holdsMarker reports whether any of lines[from:to] is a reconciler
// marker of any block, which a range about to be replaced must not hold.
func holdsMarker(src []byte, lines []lineSpan, from, to int) bool {
	for _, l := range lines[from:to] {
		t := bytes.TrimLeft(l.text(src), " \t")
		if bytes.HasPrefix(t, []byte(beginMarker)) || bytes.HasPrefix(t, []byte(endMarker)) {
			return true
		}
	}
	return false
}
