package webhook

import (
	"errors"
	"net/http"
)

// Reason says in one word why a delivery was refused. It is the body of the
// refusal and the result label of the request counter, so it is drawn from
// the fixed set below and never carries anything from the request.
type Reason string

const (
	// ReasonBadSignature: the signature or token is missing, malformed or
	// wrong. The request is unauthenticated; nothing of it was trusted.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonReplayed: the delivery ID was accepted before and is still in
	// the replay cache, or a signed timestamp lies outside the clock window.
	ReasonReplayed Reason = "replayed"
	// ReasonUnsupportedEvent: the event is not a push (nor a GitHub ping),
	// or the request names no provider, or one that is not accepted.
	ReasonUnsupportedEvent Reason = "unsupported_event"
	// ReasonTooLarge: the body is over the size limit. It was not hashed.
	ReasonTooLarge Reason = "too_large"
	// ReasonMalformed: the method or content type is wrong, a delivery ID
	// is missing or malformed, or the payload is not a well-formed push.
	ReasonMalformed Reason = "malformed"
)

var reasons = []Reason{ReasonBadSignature, ReasonReplayed, ReasonUnsupportedEvent, ReasonTooLarge, ReasonMalformed}

// Error is a refused delivery. Match it with errors.As and decide on
// Reason. Its message is built from fixed text only: it never holds the
// body, a header's value or the secret.
type Error struct {
	// Provider is the provider the request claimed to come from, "" if it
	// named none.
	Provider string
	Reason   Reason

	detail string // fixed text chosen by this package
	// authenticated is set when the refusal came after the signature
	// held, so the sender was the provider and not anyone on the network.
	authenticated bool
}

func (e *Error) Error() string {
	p := e.Provider
	if p == "" {
		p = "unknown"
	}
	return "refuse " + p + " delivery: " + string(e.Reason) + " (" + e.detail + ")"
}

// Status is the HTTP status Handler answers the refusal with.
func (e *Error) Status() int {
	switch e.Reason {
	case ReasonBadSignature:
		return http.StatusUnauthorized
	case ReasonReplayed:
		return http.StatusForbidden
	case ReasonTooLarge:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusBadRequest
	}
}

func refuse(provider string, r Reason, detail string) *Error {
	return &Error{Provider: provider, Reason: r, detail: detail}
}

// ErrPing is returned by Parse and Verify for GitHub's ping event, sent
// when a webhook is created. It is not a refusal: Handler answers it with
// 200 OK. It carries no Push, as there is nothing to fetch.
var ErrPing = errors.New("ping event: nothing to fetch")
