package bench

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/acme"
)

const acmeURN = "urn:ietf:params:acme:error:"

// classify names the kind of a failed issuance for the histogram: the
// ACME problem type when the server sent one (the part an operator can
// look up in RFC 8555 §6.7), otherwise what the client saw.
func classify(err error) string {
	var ae *acme.Error
	var aze *acme.AuthorizationError
	var oe *acme.OrderError
	var ce *certError
	var ne net.Error
	switch {
	case errors.As(err, &aze):
		// The challenge error explains why validation failed; prefer it
		// over the generic "authorization invalid".
		for _, e := range aze.Errors {
			if errors.As(e, &ae) {
				return problemClass(ae)
			}
		}
		return "authorizationInvalid"
	case errors.As(err, &oe):
		if oe.Problem != nil {
			return problemClass(oe.Problem)
		}
		return "order" + upperFirst(oe.Status)
	case errors.As(err, &ae):
		return problemClass(ae)
	case errors.As(err, &ce):
		return "badCertificate"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne):
		if ne.Timeout() {
			return "networkTimeout"
		}
		return "network"
	case strings.Contains(err.Error(), "acme: "):
		// The library's own complaints (unparsable responses, missing
		// headers) are protocol errors of the server.
		return "protocol"
	}
	return "other"
}

func problemClass(e *acme.Error) string {
	if e.ProblemType == "" {
		return "http" + strconv.Itoa(e.StatusCode)
	}
	if short, ok := strings.CutPrefix(e.ProblemType, acmeURN); ok {
		return short
	}
	return e.ProblemType
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
