package confedit

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

// LineSpan is one line of a file, src[Start:End], line ending included.
type LineSpan struct{ Start, End int }

// SplitLines returns the lines of src; a last line without a line ending
// is a line too.
func SplitLines(src []byte) []LineSpan {
	var lines []LineSpan
	for start := 0; start < len(src); {
		end := bytes.IndexByte(src[start:], '\n')
		if end < 0 {
			lines = append(lines, LineSpan{start, len(src)})
			break
		}
		lines = append(lines, LineSpan{start, start + end + 1})
		start += end + 1
	}
	return lines
}

// Text is the line without its line ending.
func (l LineSpan) Text(src []byte) []byte {
	return bytes.TrimRight(src[l.Start:l.End], "\r\n")
}

// LineEnding is the file's line ending, judged by its first line.
func LineEnding(src []byte) string {
	if i := bytes.IndexByte(src, '\n'); i > 0 && src[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// Block names one managed block of a file.
type Block struct{ Name string }

// marker reports whether line is this block's BEGIN or END marker, and
// the line ending a BEGIN marker says was added before the block.
func (b Block) marker(line []byte) (begin, end bool, added string) {
	t := string(bytes.TrimLeft(line, " \t"))
	switch t {
	case beginMarker + " " + b.Name:
		return true, false, ""
	case beginMarker + " " + b.Name + addedNL:
		return true, false, "\n"
	case beginMarker + " " + b.Name + addedCRLF:
		return true, false, "\r\n"
	case endMarker + " " + b.Name:
		return false, true, ""
	}
	return false, false, ""
}

// Find returns the line indexes of the block's BEGIN and END markers.
func (b Block) Find(src []byte, lines []LineSpan) (first, last int, ok bool, err error) {
	first, last = -1, -1
	for i, l := range lines {
		begin, end, _ := b.marker(l.Text(src))
		switch {
		case begin && first >= 0:
			return 0, 0, false, fmt.Errorf("managed block %q: a second BEGIN marker on line %d", b.Name, i+1)
		case begin:
			first = i
		case end && (first < 0 || last >= 0):
			return 0, 0, false, fmt.Errorf("managed block %q: END marker on line %d without its BEGIN", b.Name, i+1)
		case end:
			last = i
		}
	}
	if first >= 0 && last < 0 {
		return 0, 0, false, fmt.Errorf("managed block %q: BEGIN marker on line %d without its END", b.Name, first+1)
	}
	return first, last, first >= 0, nil
}

// Remove returns src with the block taken out and the lines it replaced
// put back; changed is false when src has no such block.
func (b Block) Remove(src []byte) (out []byte, changed bool, err error) {
	lines := SplitLines(src)
	first, last, ok, err := b.Find(src, lines)
	if err != nil || !ok {
		return src, false, err
	}
	start := lines[first].Start
	if _, _, added := b.marker(lines[first].Text(src)); added != "" {
		if !bytes.HasSuffix(src[:start], []byte(added)) {
			return nil, false, errors.New("managed block " + b.Name + ": the line ending added before it is gone")
		}
		start -= len(added)
	}
	var buf bytes.Buffer
	buf.Write(src[:start])
	for _, l := range lines[first+1 : last] {
		line := src[l.Start:l.End]
		switch {
		case bytes.HasPrefix(line, []byte(savedLine)):
			buf.Write(line[len(savedLine):])
		case bytes.HasPrefix(line, []byte(savedLast)):
			buf.Write(bytes.TrimSuffix(line[len(savedLast):], []byte("\n")))
		}
	}
	buf.Write(src[lines[last].End:])
	return buf.Bytes(), true, nil
}

// Splice returns src with src[start:end] (whole lines, or the empty
// range at the end of the file) replaced by the block: the replaced lines
// kept as comments, then live, each line prefixed with indent.
func (b Block) Splice(src []byte, start, end int, indent, note string, live []string) []byte {
	eol := LineEnding(src)
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
	buf.WriteString(indent + beginMarker + " " + b.Name + flag + eol)
	buf.WriteString(indent + "# " + note + eol)
	orig := src[start:end]
	for _, l := range SplitLines(orig) {
		line := orig[l.Start:l.End]
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
	buf.WriteString(indent + endMarker + " " + b.Name + eol)
	buf.Write(src[end:])
	return buf.Bytes()
}

// HoldsMarker reports whether any of lines[from:to] is a reconciler
// marker of any block, which a range about to be replaced must not hold.
func HoldsMarker(src []byte, lines []LineSpan, from, to int) bool {
	for _, l := range lines[from:to] {
		t := bytes.TrimLeft(l.Text(src), " \t")
		if bytes.HasPrefix(t, []byte(beginMarker)) || bytes.HasPrefix(t, []byte(endMarker)) {
			return true
		}
	}
	return false
}
