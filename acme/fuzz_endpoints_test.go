package acme

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// fuzzState is an account with an order, an authorization, a challenge and
// an issued certificate, whose URLs the fuzzed requests are sent to.
type fuzzState struct {
	c *testClient
	// urls, indexed by the fuzzed endpoint number.
	urls []string
}

// newFuzzState registers an account and takes one order through to its
// certificate, plus a second order left pending (for its authorization
// and challenge).
func newFuzzState(t testing.TB, env *testEnv) *fuzzState {
	c := env.newClient(t)
	c.hc = &http.Client{Transport: handlerTransport{env.srv.Handler()}}
	c.register()
	done, _ := c.issue("dns:done.internal")
	pending, pendingURL := c.newOrder("dns:pending.internal")
	a := c.authz(pending.Authorizations[0])
	return &fuzzState{
		c: c,
		urls: []string{
			c.dir + "/new-account", c.kid, c.kid + "/orders", c.dir + "/new-order",
			pendingURL, pending.Authorizations[0], a.Challenges[0].URL, pending.Finalize,
			done.Finalize, done.Certificate, c.dir + "/key-change", c.dir + "/revoke-cert",
		},
	}
}

// FuzzSignedPayloads sends correctly signed requests with fuzzed payloads
// to every POST endpoint: whatever the payload, the answer is a success or
// a problem document exactly as RFC 8555 §6.7 says (type in the ACME
// namespace, status equal to the HTTP status, a detail), never a server
// error, and always with a fresh nonce.
func FuzzSignedPayloads(f *testing.F) {
	env := newEnv(f)
	st := newFuzzState(f, env)
	seeds := []string{
		`{}`, ``, `null`, `[]`, `"x"`, `{"status":"deactivated"}`, `{"status":"valid"}`,
		`{"contact":["mailto:a@b.example"],"termsOfServiceAgreed":true}`,
		`{"contact":["tel:1"]}`, `{"onlyReturnExisting":true}`,
		`{"externalAccountBinding":{"protected":"e30","payload":"","signature":""}}`,
		`{"identifiers":[{"type":"dns","value":"x.internal"}]}`,
		`{"identifiers":[{"type":"ip","value":"10.0.0.1"}],"notAfter":"2030-01-01T00:00:00Z"}`,
		`{"csr":"` + csrFor(f, "pending.internal") + `"}`, `{"csr":"!!"}`,
		`{"certificate":"AAAA","reason":1}`, `{"certificate":"AAAA","reason":2}`,
		`{"protected":"e30","payload":"e30","signature":"AAAA"}`,
		`{"account":"x","oldKey":{"kty":"EC"}}`,
	}
	for i := range st.urls {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, payload []byte) {
		st.c.t = t
		i := int(endpoint) % len(st.urls)
		// new-account is signed with a jwk, every other endpoint with the kid.
		newAccount := strings.HasSuffix(st.urls[i], "/new-account")
		o := signOpts{forceJWK: newAccount}
		if newAccount {
			o.key = newKey(t) // a new key: new-account with the account's key would only look it up
		}
		r := st.c.postWith(st.urls[i], payload, o)
		if r.header.Get("Replay-Nonce") == "" {
			t.Fatalf("%s: no Replay-Nonce (status %d)", st.urls[i], r.status)
		}
		if r.status < 400 {
			return
		}
		checkProblemDocument(t, st.urls[i], r)
		// The state may have changed (the account deactivated): start
		// again from a fresh one so that later inputs still reach the
		// handlers past authentication. Other refusals (orderNotReady on a
		// finalize, say) leave the state as it was.
		var p struct{ Type string }
		r.decode(t, &p)
		if p.Type == problemPrefix+"unauthorized" || p.Type == problemPrefix+"accountDoesNotExist" {
			st = newFuzzState(t, env)
		}
	})
}

// checkProblemDocument checks an error response against RFC 8555 §6.7 and
// RFC 7807: the media type, a type in the ACME namespace, a status equal
// to the HTTP status, a detail, and subproblems that are problems too.
// A server error is a failure: no payload may cause one.
func checkProblemDocument(t *testing.T, url string, r *response) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("%s: server error %d: %s", url, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q for status %d", url, ct, r.status)
	}
	var p Problem
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: problem is not JSON: %v: %s", url, err, r.body)
	}
	var check func(p *Problem, top bool)
	check = func(p *Problem, top bool) {
		name, ok := strings.CutPrefix(p.Type, problemPrefix)
		if !ok || !knownProblemType(name) {
			t.Fatalf("%s: problem type %q", url, p.Type)
		}
		if top && p.Status != r.status {
			t.Fatalf("%s: problem status %d, HTTP status %d", url, p.Status, r.status)
		}
		if p.Detail == "" {
			t.Fatalf("%s: problem without detail: %s", url, r.body)
		}
		for _, sp := range p.Subproblems {
			if sp.Identifier == nil {
				t.Fatalf("%s: subproblem without identifier: %s", url, r.body)
			}
			check(sp, false)
		}
	}
	check(&p, true)
}

// knownProblemType reports whether name is a problem type this server
// sends (the RFC 8555 §6.7 list, as kindInfo maps error kinds to it).
func knownProblemType(name string) bool {
	for _, ki := range kindInfo {
		if ki.typ == name {
			return true
		}
	}
	return false
}
