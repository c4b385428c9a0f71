package signature

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// allowedSigner is one line of an allowed_signers file: who may sign with
// a key, and for what.
type allowedSigner struct {
	line int
	// principals is the comma-separated list of patterns as written, such
	// as "alice@example.com,*@ops.example.com".
	principals string
	// namespaces is the comma-separated list of namespace patterns, ""
	// when the line puts no limit on them.
	namespaces string
	// validAfter and validBefore bound the committer time; zero when the
	// line sets no bound.
	validAfter, validBefore time.Time
	key                     ssh.PublicKey
}

// keyTypes are the key types an allowed_signers line may hold.
var keyTypes = map[string]bool{
	ssh.KeyAlgoED25519:    true,
	ssh.KeyAlgoRSA:        true,
	ssh.KeyAlgoECDSA256:   true,
	ssh.KeyAlgoECDSA384:   true,
	ssh.KeyAlgoECDSA521:   true,
	ssh.KeyAlgoSKED25519:  true,
	ssh.KeyAlgoSKECDSA256: true,
}

// syntax is the shape of a line, for error messages.
const syntax = `write PRINCIPALS [OPTIONS] KEYTYPE BASE64KEY [COMMENT], as in: alice@example.com namespaces="git" ssh-ed25519 AAAA...`

// parseAllowedSigners reads an allowed_signers file as ssh-keygen(1)
// describes it under ALLOWED SIGNERS. name is the file's name, for errors.
// Times without a Z or UTC suffix are read in loc, as ssh-keygen reads them
// in the system's time zone.
//
// It is stricter than ssh-keygen in two ways: a cert-authority line is
// refused (signatures by SSH certificates are not checked), and so is a
// quote inside the principals other than around all of them.
func parseAllowedSigners(name string, data []byte, loc *time.Location) ([]allowedSigner, error) {
	var signers []allowedSigner
	for i, line := range bytes.Split(data, []byte("\n")) {
		s, err := parseLine(string(line), loc)
		if err != nil {
			return nil, fmt.Errorf("parse allowed_signers %s: line %d: %w", name, i+1, err)
		}
		if s != nil {
			s.line = i + 1
			signers = append(signers, *s)
		}
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("parse allowed_signers %s: no signers listed: %s", name, syntax)
	}
	return signers, nil
}

// parseLine reads one line; nil for a blank or comment line.
func parseLine(line string, loc *time.Location) (*allowedSigner, error) {
	rest := strings.TrimLeft(line, " \t\r")
	if rest == "" || rest[0] == '#' {
		return nil, nil
	}
	var s allowedSigner
	var err error
	if s.principals, rest, err = cutPrincipals(rest); err != nil {
		return nil, err
	}
	if keyTypes[s.principals] {
		return nil, fmt.Errorf("the line starts with key type %s, not with principals: %s", s.principals, syntax)
	}
	rest = strings.TrimLeft(rest, " \t\r")
	if rest == "" {
		return nil, fmt.Errorf("no key after the principals %q: %s", s.principals, syntax)
	}
	if first := firstWord(rest); !keyTypes[first] && !strings.HasSuffix(first, "-cert-v01@openssh.com") && looksLikeOptions(first) {
		var opts string
		if opts, rest, err = cutOptions(rest); err != nil {
			return nil, err
		}
		if err := s.parseOptions(opts, loc); err != nil {
			return nil, err
		}
		rest = strings.TrimLeft(rest, " \t\r")
		if rest == "" {
			return nil, fmt.Errorf("no key after the options: %s", syntax)
		}
		if next := firstWord(rest); looksLikeOptions(next) {
			return nil, fmt.Errorf("a space separates the options %s and %s: join them with a comma, as namespaces=\"git\",valid-before=\"20301231Z\"", opts, next)
		}
	}
	if s.key, err = parseKey(rest); err != nil {
		return nil, err
	}
	return &s, nil
}

// isSpace reports whether r separates the fields of a line, as for
// ssh-keygen. Other white space, such as a vertical tab, is part of a
// field.
func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' }

// firstWord returns s up to its first space.
func firstWord(s string) string {
	if i := strings.IndexFunc(s, isSpace); i >= 0 {
		return s[:i]
	}
	return s
}

// cutPrincipals splits the principals off line, which starts with them.
// They may be quoted as a whole.
func cutPrincipals(line string) (principals, rest string, err error) {
	if line[0] == '"' {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return "", "", errors.New("the principals' opening quote is never closed")
		}
		principals, rest = line[1:1+end], line[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\r' {
			return "", "", errors.New("a space must follow the principals' closing quote")
		}
	} else {
		end := strings.IndexAny(line, " \t\r")
		if end < 0 {
			end = len(line)
		}
		principals, rest = line[:end], line[end:]
		if strings.Contains(principals, `"`) {
			return "", "", fmt.Errorf("stray quote in the principals %q: quote all of them or none", principals)
		}
	}
	if strings.Trim(principals, ",") == "" {
		return "", "", fmt.Errorf("no principals: %s", syntax)
	}
	return principals, rest, nil
}

// optionNames are the options ssh-keygen knows, lower-case.
var optionNames = map[string]bool{"cert-authority": true, "namespaces": true, "valid-after": true, "valid-before": true}

// looksLikeOptions reports whether word, after the principals, is an
// option list rather than a key type.
func looksLikeOptions(word string) bool {
	name, _, _ := strings.Cut(word, "=")
	name, _, _ = strings.Cut(name, ",")
	return strings.ContainsAny(word, "=,") || optionNames[strings.ToLower(name)]
}

// cutOptions splits the options off s, up to the first space outside
// double quotes; \" inside quotes is a quote.
func cutOptions(s string) (opts, rest string, err error) {
	quoted := false
	i := 0
	for ; i < len(s) && (quoted || (s[i] != ' ' && s[i] != '\t')); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '"':
			i++
		case s[i] == '"':
			quoted = !quoted
		}
	}
	if quoted {
		return "", "", errors.New("an option's opening quote is never closed")
	}
	return s[:i], s[i:], nil
}

// parseOptions reads the comma-separated options of a line into s.
func (s *allowedSigner) parseOptions(opts string, loc *time.Location) error {
	seen := map[string]bool{}
	for opts != "" {
		name, value, hasValue, rest, err := cutOption(opts)
		if err != nil {
			return err
		}
		opts = rest
		lower := strings.ToLower(name)
		if seen[lower] {
			return fmt.Errorf("option %s is given twice: keep one", name)
		}
		seen[lower] = true
		switch lower {
		case "cert-authority":
			return errors.New("cert-authority is not supported: signatures made with SSH certificates are not checked; list each signer's own key instead")
		case "namespaces", "valid-after", "valid-before":
		default:
			return fmt.Errorf("unknown option %q: allowed_signers takes namespaces=, valid-after= and valid-before=", name)
		}
		if !hasValue {
			return fmt.Errorf("option %s needs a value in double quotes, as %s=\"...\"", name, lower)
		}
		switch lower {
		case "namespaces":
			if strings.Trim(value, ",") == "" {
				return errors.New(`namespaces="" allows no namespace: write namespaces="git", or leave the option out`)
			}
			s.namespaces = value
		case "valid-after":
			if s.validAfter, err = parseSSHTime(value, loc); err != nil {
				return fmt.Errorf("valid-after: %w", err)
			}
		case "valid-before":
			if s.validBefore, err = parseSSHTime(value, loc); err != nil {
				return fmt.Errorf("valid-before: %w", err)
			}
		}
	}
	if !s.validAfter.IsZero() && !s.validBefore.IsZero() && !s.validBefore.After(s.validAfter) {
		return errors.New("valid-before is not after valid-after: the key would never be valid")
	}
	return nil
}

// cutOption splits the first option off opts: a name, then optionally
// =" value ", then a comma or the end.
func cutOption(opts string) (name, value string, hasValue bool, rest string, err error) {
	end := strings.IndexAny(opts, "=,")
	if end < 0 {
		return opts, "", false, "", nil
	}
	name = opts[:end]
	if name == "" {
		return "", "", false, "", errors.New("empty option: remove the extra comma")
	}
	if opts[end] == ',' {
		rest = opts[end+1:]
		if rest == "" {
			return "", "", false, "", errors.New("the options end with a comma: remove it")
		}
		return name, "", false, rest, nil
	}
	v := opts[end+1:]
	if v == "" || v[0] != '"' {
		return "", "", false, "", fmt.Errorf("option %s: put the value in double quotes, as %s=\"...\"", name, strings.ToLower(name))
	}
	var b strings.Builder
	i := 1
	for ; i < len(v) && v[i] != '"'; i++ {
		if v[i] == '\\' && i+1 < len(v) && v[i+1] == '"' {
			i++
		}
		b.WriteByte(v[i])
	}
	if i == len(v) {
		return "", "", false, "", fmt.Errorf("option %s: the value's quote is never closed", name)
	}
	rest = v[i+1:]
	switch {
	case rest == "":
	case rest[0] != ',':
		return "", "", false, "", fmt.Errorf("option %s: a comma must follow the value's closing quote", name)
	case len(rest) == 1:
		return "", "", false, "", errors.New("the options end with a comma: remove it")
	default:
		rest = rest[1:]
	}
	return name, b.String(), true, rest, nil
}

// parseSSHTime reads a time as ssh-keygen does: YYYYMMDD, YYYYMMDDHHMM or
// YYYYMMDDHHMMSS, in UTC if suffixed with Z or UTC, else in loc.
func parseSSHTime(v string, loc *time.Location) (time.Time, error) {
	s := v
	switch {
	case len(s) > 1 && strings.EqualFold(s[len(s)-1:], "Z"):
		s, loc = s[:len(s)-1], time.UTC
	case len(s) > 3 && strings.EqualFold(s[len(s)-3:], "UTC"):
		s, loc = s[:len(s)-3], time.UTC
	}
	layout := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}[len(s)]
	if layout == "" {
		return time.Time{}, fmt.Errorf("%q is not a time: write YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, with Z for UTC", v)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time: write YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, with Z for UTC", v)
	}
	if t.Unix() <= 0 {
		return time.Time{}, fmt.Errorf("%q is before 1970", v)
	}
	return t, nil
}

// parseKey reads "KEYTYPE BASE64KEY [COMMENT]".
func parseKey(s string) (ssh.PublicKey, error) {
	fields := strings.FieldsFunc(s, isSpace)
	typ := fields[0]
	if strings.HasSuffix(typ, "-cert-v01@openssh.com") {
		return nil, fmt.Errorf("key type %s is a certificate: list the plain key it certifies instead", typ)
	}
	if typ == "ssh-dss" {
		return nil, errors.New("ssh-dss (DSA) keys are not accepted: DSA is insecure and OpenSSH dropped it; sign with an ed25519 key")
	}
	if !keyTypes[typ] {
		return nil, fmt.Errorf("unknown key type %q: expected one such as ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256 (%s)", typ, syntax)
	}
	if len(fields) < 2 {
		return nil, fmt.Errorf("no key after the key type %s: %s", typ, syntax)
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, fmt.Errorf("the %s key is not valid base64: copy the whole key, on one line, from the .pub file", typ)
	}
	// ssh-keygen reads anything after the key as a comment, so an option
	// put there is silently ignored: a valid-before would never expire.
	for _, word := range fields[2:] {
		if looksLikeOptions(word) && optionNames[strings.ToLower(strings.SplitN(word, "=", 2)[0])] {
			return nil, fmt.Errorf("%s after the key would be ignored as a comment: put options between the principals and the key", word)
		}
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("the %s key cannot be read (copy it whole from the .pub file): %w", typ, err)
	}
	if key.Type() != typ {
		return nil, fmt.Errorf("the key is of type %s, not %s as the line says: write %s before it", key.Type(), typ, key.Type())
	}
	return key, nil
}

// matchPatternList reports whether s matches the comma-separated patterns
// as OpenSSH's match_pattern_list does, case-sensitively: some pattern
// matches and no negated one (!pattern) does. * matches any run of
// characters, ? any one.
func matchPatternList(s, patterns string) bool {
	positive := false
	for p := range strings.SplitSeq(patterns, ",") {
		negated := strings.HasPrefix(p, "!")
		if negated {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if negated {
				return false
			}
			positive = true
		}
	}
	return positive
}

// matchPattern reports whether all of s matches the glob pattern p, in
// O(len(s)·len(p)) time however many stars p has.
func matchPattern(s, p string) bool {
	si, pi := 0, 0
	star, starS := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, starS = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si++
			pi++
		case star >= 0:
			// Let the last star swallow one more character.
			starS++
			si, pi = starS, star+1
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
