package acme

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// unavailableRetryAfter is the Retry-After, in seconds, of a request that
// failed because the database could not be reached: long enough not to
// hammer a recovering server, short enough for a failover.
const unavailableRetryAfter = 2

// problemPrefix is the RFC 8555 §6.7 namespace of ACME problem types.
const problemPrefix = "urn:ietf:params:acme:error:"

// Problem is an RFC 7807 problem document as RFC 8555 §6.7 extends it.
type Problem struct {
	Type        string           `json:"type"`
	Detail      string           `json:"detail,omitempty"`
	Status      int              `json:"status,omitempty"`
	Identifier  *core.Identifier `json:"identifier,omitempty"`
	Subproblems []*Problem       `json:"subproblems,omitempty"`
	Algorithms  []string         `json:"algorithms,omitempty"`
}

// kindInfo is the problem type and HTTP status of each error kind. Kinds
// that are not ACME problem types (notFound, conflict, and the HTTP-level
// ones) use the type "malformed" with their own status, as RFC 8555 leaves
// those to HTTP.
var kindInfo = map[core.ErrorKind]struct {
	typ    string
	status int
}{
	core.KindMalformed:               {"malformed", http.StatusBadRequest},
	core.KindUnauthorized:            {"unauthorized", http.StatusForbidden},
	core.KindNotFound:                {"malformed", http.StatusNotFound},
	core.KindBadNonce:                {"badNonce", http.StatusBadRequest},
	core.KindBadSignatureAlgorithm:   {"badSignatureAlgorithm", http.StatusBadRequest},
	core.KindBadPublicKey:            {"badPublicKey", http.StatusBadRequest},
	core.KindBadCSR:                  {"badCSR", http.StatusBadRequest},
	core.KindBadRevocationReason:     {"badRevocationReason", http.StatusBadRequest},
	core.KindAlreadyRevoked:          {"alreadyRevoked", http.StatusBadRequest},
	core.KindRejectedIdentifier:      {"rejectedIdentifier", http.StatusBadRequest},
	core.KindUnsupportedIdentifier:   {"unsupportedIdentifier", http.StatusBadRequest},
	core.KindAccountDoesNotExist:     {"accountDoesNotExist", http.StatusBadRequest},
	core.KindExternalAccountRequired: {"externalAccountRequired", http.StatusBadRequest},
	core.KindInvalidContact:          {"invalidContact", http.StatusBadRequest},
	core.KindUnsupportedContact:      {"unsupportedContact", http.StatusBadRequest},
	core.KindOrderNotReady:           {"orderNotReady", http.StatusForbidden},
	core.KindConnection:              {"connection", http.StatusBadRequest},
	core.KindDNS:                     {"dns", http.StatusBadRequest},
	core.KindTLS:                     {"tls", http.StatusBadRequest},
	core.KindIncorrectResponse:       {"incorrectResponse", http.StatusBadRequest},
	core.KindCAA:                     {"caa", http.StatusForbidden},
	core.KindRateLimited:             {"rateLimited", http.StatusTooManyRequests},
	core.KindUserActionRequired:      {"userActionRequired", http.StatusForbidden},
	core.KindConflict:                {"malformed", http.StatusConflict},
	core.KindServerInternal:          {"serverInternal", http.StatusInternalServerError},
	core.KindMethodNotAllowed:        {"malformed", http.StatusMethodNotAllowed},
	core.KindUnsupportedMediaType:    {"malformed", http.StatusUnsupportedMediaType},
	core.KindPayloadTooLarge:         {"malformed", http.StatusRequestEntityTooLarge},
}

// ProblemFor maps a typed error to its problem document. Anything that is
// not a *core.Error, or has an unknown kind, is serverInternal with a
// generic detail: internal causes are logged, never shown.
func ProblemFor(err error) *Problem {
	e := core.AsError(err)
	if e == nil {
		return nil
	}
	info, ok := kindInfo[e.Kind]
	if !ok {
		return &Problem{Type: problemPrefix + "serverInternal", Detail: "internal error", Status: http.StatusInternalServerError}
	}
	p := &Problem{
		Type:       problemPrefix + info.typ,
		Detail:     e.Detail,
		Status:     info.status,
		Identifier: e.Identifier,
	}
	if e.Kind == core.KindBadSignatureAlgorithm {
		p.Algorithms = e.Algorithms
	}
	for _, sub := range e.Subproblems {
		if sub == nil {
			continue
		}
		sp := ProblemFor(sub)
		// Subproblems carry no HTTP status of their own (§6.7.1).
		sp.Status = 0
		p.Subproblems = append(p.Subproblems, sp)
	}
	return p
}

// writeError writes err as a problem document, with Retry-After and
// Location headers when the error carries them. Server-side failures are
// logged with their cause; client errors only at debug level.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := core.AsError(err)
	p := ProblemFor(e)
	lvl := slog.LevelDebug
	if p.Status >= 500 {
		lvl = slog.LevelError
	}
	s.logger(r.Context()).Log(r.Context(), lvl, "request failed", "problem", p.Type, "status", p.Status, "error", e.Error())
	h := w.Header()
	retry := e.RetryAfter
	if p.Status >= 500 && errors.Is(err, store.ErrUnavailable) {
		// Whatever path the failure took, a database outage is temporary:
		// say so, and when to come back, instead of a bare internal error.
		p.Detail = "the database is temporarily unavailable; retry later"
		retry = max(retry, unavailableRetryAfter)
	}
	if retry > 0 {
		h.Set("Retry-After", strconv.Itoa(retry))
	}
	if e.Location != "" {
		h.Set("Location", e.Location)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes an ACME resource.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
