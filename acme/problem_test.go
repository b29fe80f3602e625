package acme

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/policyca/policyca/core"
)

func TestProblemFor(t *testing.T) {
	id := func(v string) *core.Identifier { return &core.Identifier{Type: core.DNS, Value: v} }
	tests := []struct {
		name string
		err  error
		want string // exact JSON
	}{
		{"malformed", core.Errorf(core.KindMalformed, "bad"),
			`{"type":"urn:ietf:params:acme:error:malformed","detail":"bad","status":400}`},
		{"badNonce", core.Errorf(core.KindBadNonce, "stale"),
			`{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale","status":400}`},
		{"unauthorized", core.Errorf(core.KindUnauthorized, "no"),
			`{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no","status":403}`},
		{"notFound", core.Errorf(core.KindNotFound, "gone"),
			`{"type":"urn:ietf:params:acme:error:malformed","detail":"gone","status":404}`},
		{"conflict", core.Errorf(core.KindConflict, "taken"),
			`{"type":"urn:ietf:params:acme:error:malformed","detail":"taken","status":409}`},
		{"orderNotReady", core.Errorf(core.KindOrderNotReady, "pending"),
			`{"type":"urn:ietf:params:acme:error:orderNotReady","detail":"pending","status":403}`},
		{"accountDoesNotExist", core.Errorf(core.KindAccountDoesNotExist, "who"),
			`{"type":"urn:ietf:params:acme:error:accountDoesNotExist","detail":"who","status":400}`},
		{"rateLimited", core.Errorf(core.KindRateLimited, "slow down"),
			`{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down","status":429}`},
		{"serverInternal", core.Errorf(core.KindServerInternal, "oops"),
			`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"oops","status":500}`},
		{"wrapped cause hidden", core.Wrap(core.KindServerInternal, fmt.Errorf("db password wrong"), "cannot load"),
			`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"cannot load","status":500}`},
		{"plain error", fmt.Errorf("secret path /etc/x"),
			`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"internal error","status":500}`},
		{"unknown kind", &core.Error{Kind: "bogus", Detail: "x"},
			`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"internal error","status":500}`},
		{"algorithms", &core.Error{Kind: core.KindBadSignatureAlgorithm, Detail: "no", Algorithms: []string{"ES256", "RS256"}},
			`{"type":"urn:ietf:params:acme:error:badSignatureAlgorithm","detail":"no","status":400,"algorithms":["ES256","RS256"]}`},
		{"algorithms only for badSignatureAlgorithm", &core.Error{Kind: core.KindMalformed, Detail: "no", Algorithms: []string{"ES256"}},
			`{"type":"urn:ietf:params:acme:error:malformed","detail":"no","status":400}`},
		{"subproblems", &core.Error{Kind: core.KindRejectedIdentifier, Detail: "refused", Subproblems: []*core.Error{
			{Kind: core.KindRejectedIdentifier, Detail: "rule a", Identifier: id("a.internal")},
			{Kind: core.KindMalformed, Detail: "bad name", Identifier: id("b.internal")},
		}},
			`{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"refused","status":400,"subproblems":[` +
				`{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"rule a","identifier":{"type":"dns","value":"a.internal"}},` +
				`{"type":"urn:ietf:params:acme:error:malformed","detail":"bad name","identifier":{"type":"dns","value":"b.internal"}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(ProblemFor(tt.err))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEveryKindHasAProblem(t *testing.T) {
	kinds := []core.ErrorKind{
		core.KindMalformed, core.KindUnauthorized, core.KindNotFound, core.KindBadNonce, core.KindBadSignatureAlgorithm,
		core.KindBadPublicKey, core.KindBadCSR, core.KindBadRevocationReason, core.KindAlreadyRevoked,
		core.KindRejectedIdentifier, core.KindUnsupportedIdentifier, core.KindAccountDoesNotExist,
		core.KindExternalAccountRequired, core.KindInvalidContact, core.KindUnsupportedContact, core.KindOrderNotReady,
		core.KindConnection, core.KindDNS, core.KindTLS, core.KindIncorrectResponse, core.KindCAA, core.KindRateLimited,
		core.KindUserActionRequired, core.KindConflict, core.KindServerInternal, core.KindMethodNotAllowed,
		core.KindUnsupportedMediaType, core.KindPayloadTooLarge,
	}
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			if _, ok := kindInfo[k]; !ok {
				t.Errorf("kind %s has no problem type", k)
			}
		})
	}
}

func TestWriteErrorHeaders(t *testing.T) {
	s := &Server{log: discardLogger()}
	tests := []struct {
		name       string
		err        *core.Error
		wantHeader http.Header
	}{
		{"retry-after", &core.Error{Kind: core.KindRateLimited, Detail: "wait", RetryAfter: 30},
			http.Header{"Retry-After": {"30"}}},
		{"location", &core.Error{Kind: core.KindConflict, Detail: "taken", Location: "https://ca/acme/p/account/x"},
			http.Header{"Location": {"https://ca/acme/p/account/x"}}},
		{"neither", core.Errorf(core.KindMalformed, "bad"), http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeError(w, httptest.NewRequest(http.MethodPost, "/", nil), tt.err)
			got := http.Header{}
			for _, h := range []string{"Retry-After", "Location"} {
				if v := w.Header().Values(h); len(v) > 0 {
					got[h] = v
				}
			}
			if !reflect.DeepEqual(got, tt.wantHeader) {
				t.Errorf("headers = %v, want %v", got, tt.wantHeader)
			}
			if w.Header().Get("Content-Type") != "application/problem+json" || w.Code != ProblemFor(tt.err).Status {
				t.Errorf("Content-Type %q, status %d", w.Header().Get("Content-Type"), w.Code)
			}
		})
	}
}

func TestOrderState(t *testing.T) {
	now := mustTime(t, "2030-01-01T12:00:00Z")
	later := now.Add(1)
	authz := func(st core.Status) *core.Authorization {
		return &core.Authorization{Status: st, Expires: later, Identifier: core.Identifier{Type: core.DNS, Value: "a.internal"}}
	}
	tests := []struct {
		name    string
		order   core.Status
		expires bool
		authzs  []*core.Authorization
		want    core.Status
		wantErr bool
	}{
		{"pending, all pending", core.StatusPending, false, []*core.Authorization{authz(core.StatusPending), authz(core.StatusValid)}, core.StatusPending, false},
		{"pending, all valid", core.StatusPending, false, []*core.Authorization{authz(core.StatusValid), authz(core.StatusValid)}, core.StatusReady, false},
		{"pending, one invalid", core.StatusPending, false, []*core.Authorization{authz(core.StatusValid), authz(core.StatusInvalid)}, core.StatusInvalid, true},
		{"ready, one deactivated", core.StatusReady, false, []*core.Authorization{authz(core.StatusDeactivated)}, core.StatusInvalid, true},
		{"pending, expired", core.StatusPending, true, nil, core.StatusInvalid, true},
		{"processing, expired", core.StatusProcessing, true, nil, core.StatusProcessing, false},
		{"valid, invalid authz", core.StatusValid, false, []*core.Authorization{authz(core.StatusInvalid)}, core.StatusValid, false},
		{"pending, no authzs", core.StatusPending, false, nil, core.StatusPending, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &core.Order{Status: tt.order, Expires: later}
			if tt.expires {
				o.Expires = now
			}
			st, e := orderState(o, tt.authzs, now)
			if st != tt.want || (e != nil) != tt.wantErr {
				t.Errorf("orderState = %s, %v; want %s, error %v", st, e, tt.want, tt.wantErr)
			}
		})
	}
}
