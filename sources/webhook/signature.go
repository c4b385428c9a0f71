package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// The headers of GitLab's signed deliveries, which follow the Standard
// Webhooks specification.
const (
	headerStdID        = "Webhook-Id"
	headerStdTimestamp = "Webhook-Timestamp"
	headerStdSignature = "Webhook-Signature"
)

var errSignatureFormat = errors.New("malformed signature header")

// parseGitHubSignature reads X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the body.
func parseGitHubSignature(v string) ([]byte, error) {
	hexSum, ok := strings.CutPrefix(v, "sha256=")
	if !ok {
		return nil, errSignatureFormat
	}
	return parseHexSum(hexSum)
}

// parseGiteaSignature reads X-Gitea-Signature: the hex HMAC-SHA256 of the
// body, without a prefix.
func parseGiteaSignature(v string) ([]byte, error) {
	return parseHexSum(v)
}

func parseHexSum(s string) ([]byte, error) {
	if len(s) != hex.EncodedLen(sha256.Size) {
		return nil, errSignatureFormat
	}
	sum, err := hex.DecodeString(s)
	if err != nil {
		return nil, errSignatureFormat
	}
	return sum, nil
}

// maxStdSignatures bounds the entries of a webhook-signature header that
// are checked, and so the work an unauthenticated request can cause.
const maxStdSignatures = 8

// parseStdSignatures reads a webhook-signature header: space-separated
// entries "v1,<base64 HMAC-SHA256>" (several during a key rotation).
// Entries of other versions, such as v1a's asymmetric signatures, are
// skipped; it is an error if no v1 entry remains.
func parseStdSignatures(v string) ([][]byte, error) {
	fields := strings.Fields(v)
	if len(fields) > maxStdSignatures {
		return nil, errSignatureFormat
	}
	var sums [][]byte
	for _, f := range fields {
		version, sig, ok := strings.Cut(f, ",")
		if !ok {
			return nil, errSignatureFormat
		}
		if version != "v1" {
			continue
		}
		sum, err := base64.StdEncoding.Strict().DecodeString(sig)
		if err != nil || len(sum) != sha256.Size {
			return nil, errSignatureFormat
		}
		sums = append(sums, sum)
	}
	if len(sums) == 0 {
		return nil, errSignatureFormat
	}
	return sums, nil
}

// stdSigningKey returns the HMAC key of a Standard Webhooks secret: the
// base64 after "whsec_", as GitLab's signing tokens are written. Any other
// secret is its own key.
func stdSigningKey(secret []byte) ([]byte, error) {
	enc, ok := strings.CutPrefix(string(secret), "whsec_")
	if !ok {
		return secret, nil
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		return nil, errors.New(`decode signing secret: not base64 after "whsec_"`)
	}
	return key, nil
}

// mac is the HMAC-SHA256 of the concatenated parts under key.
func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// tokenEqual compares a presented token with the secret in constant time,
// also in their lengths: both are hashed first, so the comparison takes
// as long for a short guess as for a long one.
func tokenEqual(token string, secret []byte) bool {
	a := sha256.Sum256([]byte(token))
	b := sha256.Sum256(secret)
	return hmac.Equal(a[:], b[:])
}
