package core

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorKind classifies an error; the ACME edge maps each kind to exactly one
// RFC 8555 §6.7 problem type and HTTP status.
type ErrorKind string

// Error kinds. Their names follow the ACME problem types they map to.
const (
	KindMalformed               ErrorKind = "malformed"
	KindUnauthorized            ErrorKind = "unauthorized"
	KindNotFound                ErrorKind = "notFound" // HTTP 404, type malformed
	KindBadNonce                ErrorKind = "badNonce"
	KindBadSignatureAlgorithm   ErrorKind = "badSignatureAlgorithm"
	KindBadPublicKey            ErrorKind = "badPublicKey"
	KindBadCSR                  ErrorKind = "badCSR"
	KindBadRevocationReason     ErrorKind = "badRevocationReason"
	KindAlreadyRevoked          ErrorKind = "alreadyRevoked"
	KindRejectedIdentifier      ErrorKind = "rejectedIdentifier"
	KindUnsupportedIdentifier   ErrorKind = "unsupportedIdentifier"
	KindAccountDoesNotExist     ErrorKind = "accountDoesNotExist"
	KindExternalAccountRequired ErrorKind = "externalAccountRequired"
	KindInvalidContact          ErrorKind = "invalidContact"
	KindUnsupportedContact      ErrorKind = "unsupportedContact"
	KindOrderNotReady           ErrorKind = "orderNotReady"
	KindConnection              ErrorKind = "connection"
	KindDNS                     ErrorKind = "dns"
	KindTLS                     ErrorKind = "tls"
	KindIncorrectResponse       ErrorKind = "incorrectResponse"
	KindCAA                     ErrorKind = "caa"
	KindRateLimited             ErrorKind = "rateLimited"
	KindUserActionRequired      ErrorKind = "userActionRequired"
	KindConflict                ErrorKind = "conflict" // HTTP 409, type malformed
	KindServerInternal          ErrorKind = "serverInternal"
	KindMethodNotAllowed        ErrorKind = "methodNotAllowed"     // HTTP 405, type malformed
	KindUnsupportedMediaType    ErrorKind = "unsupportedMediaType" // HTTP 415, type malformed
	KindPayloadTooLarge         ErrorKind = "payloadTooLarge"      // HTTP 413, type malformed
)

// Error is the typed error used throughout policyca. It is serialisable so
// that it can be stored on orders and challenges and carried over the RA↔CA
// API.
type Error struct {
	Kind        ErrorKind   `json:"kind"`
	Detail      string      `json:"detail"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []*Error    `json:"subproblems,omitempty"`
	// Algorithms lists the acceptable JWS algorithms (badSignatureAlgorithm).
	Algorithms []string `json:"algorithms,omitempty"`
	// RetryAfter, in seconds, is sent as a Retry-After header when > 0.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Location is set for conflicts that point at an existing resource.
	Location string `json:"location,omitempty"`
	// cause is logged but never shown to clients.
	cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Kind))
	b.WriteString(": ")
	b.WriteString(e.Detail)
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.cause }

// Errorf makes an Error of the given kind.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Wrap makes an Error of the given kind whose cause is err. The cause is kept
// for logs; the detail is what a client sees.
func Wrap(kind ErrorKind, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...), cause: err}
}

// AsError returns err as an *Error, wrapping anything else as serverInternal.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(KindServerInternal, err, "internal error")
}

// IsKind reports whether err is an *Error of the given kind.
func IsKind(err error, kind ErrorKind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}
