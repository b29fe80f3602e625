package acme

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

func TestNewOrderRefusals(t *testing.T) {
	env := newEnv(t, func(o *Options) {
		o.Provisioners[0].Policy = &fakePolicy{deny: map[string]bool{"bad.internal": true, "worse.internal": true}}
	})
	c := env.newClient(t)
	c.register()
	tests := []struct {
		name     string
		payload  string
		wantType string
		wantSubs []Problem
	}{
		{"no identifiers", `{"identifiers":[]}`, "malformed", nil},
		{"not JSON", `{"identifiers":`, "malformed", nil},
		{"email identifier", `{"identifiers":[{"type":"email","value":"a@b.internal"}]}`, "unsupportedIdentifier", nil},
		{"bad notBefore", `{"identifiers":[{"type":"dns","value":"a.internal"}],"notBefore":"yesterday"}`, "malformed", nil},
		{"notAfter before notBefore", `{"identifiers":[{"type":"dns","value":"a.internal"}],"notBefore":"2030-01-02T00:00:00Z","notAfter":"2030-01-01T00:00:00Z"}`, "malformed", nil},
		{"notAfter in the past", `{"identifiers":[{"type":"dns","value":"a.internal"}],"notAfter":"2001-01-01T00:00:00Z"}`, "malformed", nil},
		{
			"two invalid names", `{"identifiers":[{"type":"dns","value":"-x-.internal"},{"type":"dns","value":"a..internal"}]}`, "malformed",
			[]Problem{
				{Type: problemPrefix + "malformed", Identifier: &core.Identifier{Type: core.DNS, Value: "-x-.internal"}},
				{Type: problemPrefix + "malformed", Identifier: &core.Identifier{Type: core.DNS, Value: "a..internal"}},
			},
		},
		{
			"policy refusal", `{"identifiers":[{"type":"dns","value":"ok.internal"},{"type":"dns","value":"bad.internal"},{"type":"dns","value":"worse.internal"}]}`, "rejectedIdentifier",
			[]Problem{
				{Type: problemPrefix + "rejectedIdentifier", Detail: "refused by rule test", Identifier: &core.Identifier{Type: core.DNS, Value: "bad.internal"}},
				{Type: problemPrefix + "rejectedIdentifier", Detail: "refused by rule test", Identifier: &core.Identifier{Type: core.DNS, Value: "worse.internal"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := c.post(env.url("/new-order"), []byte(tt.payload)).wantProblem(t, 400, tt.wantType)
			if len(p.Subproblems) != len(tt.wantSubs) {
				t.Fatalf("subproblems = %+v", p.Subproblems)
			}
			for i, sp := range p.Subproblems {
				w := tt.wantSubs[i]
				if sp.Type != w.Type || *sp.Identifier != *w.Identifier || sp.Status != 0 || sp.Detail == "" || (w.Detail != "" && sp.Detail != w.Detail) {
					t.Errorf("subproblem %d = %+v, want %+v", i, sp, w)
				}
			}
		})
	}
}

func TestNewOrderFields(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register()
	r := c.post(env.url("/new-order"), []byte(`{"identifiers":[{"type":"dns","value":"B.internal"},{"type":"dns","value":"a.internal"},{"type":"dns","value":"b.internal"}],"notBefore":"2030-01-01T00:00:00+01:00","notAfter":"2030-01-02T00:00:00Z"}`))
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var o orderJSON
	r.decode(t, &o)
	want := []core.Identifier{{Type: core.DNS, Value: "a.internal"}, {Type: core.DNS, Value: "b.internal"}}
	if !slices.Equal(o.Identifiers, want) || o.NotBefore != "2029-12-31T23:00:00Z" || o.NotAfter != "2030-01-02T00:00:00Z" || o.Expires == "" {
		t.Errorf("order = %+v", o)
	}
	if r.header.Get("Location") == "" || len(o.Authorizations) != 2 {
		t.Errorf("Location %q, authorizations %v", r.header.Get("Location"), o.Authorizations)
	}
}

func TestChallengeLifecycle(t *testing.T) {
	tests := []struct {
		name       string
		result     error
		wantChall  core.Status
		wantAuthz  core.Status
		wantOrder  core.Status
		wantErrTyp string
	}{
		{"valid", nil, core.StatusValid, core.StatusValid, core.StatusReady, ""},
		{"invalid", core.Errorf(core.KindIncorrectResponse, "wrong key authorization"), core.StatusInvalid, core.StatusInvalid, core.StatusInvalid, "incorrectResponse"},
		{"internal error hidden", errPlain("dial tcp: secret detail"), core.StatusInvalid, core.StatusInvalid, core.StatusInvalid, "serverInternal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, noValidationWait)
			gate := make(chan struct{})
			env.validator.gate = gate
			env.validator.result = func(core.ChallengeInput) error { return tt.result }
			c := env.newClient(t)
			c.register()
			o, orderURL := c.newOrder("dns:a.internal")
			a := c.authz(o.Authorizations[0])
			ch := a.Challenges[0]

			// POST-as-GET does not trigger.
			r := c.post(ch.URL, nil)
			var got challengeJSON
			r.decode(t, &got)
			if r.status != http.StatusOK || got.Status != core.StatusPending || len(env.validator.Calls()) != 0 {
				t.Fatalf("POST-as-GET: %d %+v", r.status, got)
			}
			if !slices.Contains(r.header.Values("Link"), `<`+o.Authorizations[0]+`>;rel="up"`) {
				t.Errorf("Link = %v", r.header.Values("Link"))
			}
			// {} triggers; the challenge is processing until the gate opens.
			r = c.post(ch.URL, struct{}{})
			r.decode(t, &got)
			if r.status != http.StatusOK || got.Status != core.StatusProcessing || r.header.Get("Retry-After") == "" {
				t.Fatalf("trigger: %d %+v %v", r.status, got, r.header)
			}
			// Triggering another challenge meanwhile is refused.
			c.post(a.Challenges[1].URL, struct{}{}).wantProblem(t, 400, "malformed")
			close(gate)
			o = c.waitOrder(orderURL, core.StatusPending)
			if o.Status != tt.wantOrder {
				t.Errorf("order = %s, want %s", o.Status, tt.wantOrder)
			}
			a = c.authz(o.Authorizations[0])
			if a.Status != tt.wantAuthz || a.Challenges[0].Status != tt.wantChall {
				t.Errorf("authz %s, challenge %s", a.Status, a.Challenges[0].Status)
			}
			// §7.1.4: a finished authorization lists the challenge that
			// was validated, or attempted and failed, only.
			if len(a.Challenges) != 1 || a.Challenges[0].URL != ch.URL {
				t.Errorf("finished authorization lists %+v, want only %s", a.Challenges, ch.URL)
			}
			if tt.wantErrTyp == "" {
				if a.Challenges[0].Error != nil || a.Challenges[0].Validated == "" {
					t.Errorf("valid challenge: %+v", a.Challenges[0])
				}
				return
			}
			e := a.Challenges[0].Error
			if e == nil || e.Type != problemPrefix+tt.wantErrTyp {
				t.Fatalf("challenge error = %+v", e)
			}
			if tt.wantErrTyp == "serverInternal" && e.Detail != "internal error" {
				t.Errorf("internal cause leaked: %q", e.Detail)
			}
			if o.Error == nil || o.Error.Type != problemPrefix+"unauthorized" {
				t.Errorf("order error = %+v", o.Error)
			}
			// Triggering again after the end changes nothing.
			if r := c.post(ch.URL, struct{}{}); r.status != http.StatusOK || len(env.validator.Calls()) != 1 {
				t.Errorf("re-trigger: %d, %d calls", r.status, len(env.validator.Calls()))
			}
		})
	}
}

// TestChallengeAnswersWithQuickResult: the request that starts a
// validation waits for it (up to ValidationWait) and answers with its
// result, so the client need not poll; a slower validation is answered
// "processing" and still lands.
func TestChallengeAnswersWithQuickResult(t *testing.T) {
	for _, tt := range []struct {
		name      string
		result    error
		want      core.Status
		wantOrder core.Status
	}{
		{"valid", nil, core.StatusValid, core.StatusReady},
		{"invalid", core.Errorf(core.KindConnection, "refused"), core.StatusInvalid, core.StatusInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A generous wait: it ends when the result is in, and a slow
			// test machine must not turn the answer into "processing".
			env := newEnv(t, func(o *Options) { o.ValidationWait = time.Minute })
			env.validator.result = func(core.ChallengeInput) error { return tt.result }
			c, orderURL, r, got := triggerChallenge(t, env)
			if r.status != http.StatusOK || got.Status != tt.want || r.header.Get("Retry-After") != "" {
				t.Fatalf("trigger: %d %+v %v", r.status, got, r.header)
			}
			if (tt.result == nil) != (got.Error == nil) || (tt.result == nil) == (got.Validated == "") {
				t.Errorf("challenge answered: %+v", got)
			}
			// The order has moved on before the answer was sent.
			if o := c.order(orderURL); o.Status != tt.wantOrder {
				t.Errorf("order = %s, want %s", o.Status, tt.wantOrder)
			}
		})
	}
	t.Run("slower than the wait", func(t *testing.T) {
		env := newEnv(t, func(o *Options) { o.ValidationWait = 20 * time.Millisecond })
		gate := make(chan struct{})
		env.validator.gate = gate
		c, orderURL, r, got := triggerChallenge(t, env)
		if got.Status != core.StatusProcessing || r.header.Get("Retry-After") == "" {
			t.Fatalf("trigger: %d %+v %v", r.status, got, r.header)
		}
		close(gate)
		if o := c.waitOrder(orderURL, core.StatusPending); o.Status != core.StatusReady {
			t.Fatalf("order = %s", o.Status)
		}
	})
}

// triggerChallenge registers an account, orders a.internal and triggers
// its first challenge; it returns the client, the order URL and the
// challenge request's answer.
func triggerChallenge(t *testing.T, env *testEnv) (*testClient, string, *response, challengeJSON) {
	t.Helper()
	c := env.newClient(t)
	c.register()
	o, orderURL := c.newOrder("dns:a.internal")
	a := c.authz(o.Authorizations[0])
	r := c.post(a.Challenges[0].URL, struct{}{})
	var got challengeJSON
	r.decode(t, &got)
	return c, orderURL, r, got
}

type errPlain string

func (e errPlain) Error() string { return string(e) }

// TestConcurrentChallengeCompletion makes every authorization of one order
// finish at once: each result must land, and the order must become ready.
func TestConcurrentChallengeCompletion(t *testing.T) {
	env := newEnv(t, noValidationWait)
	gate := make(chan struct{})
	env.validator.gate = gate
	c := env.newClient(t)
	c.register()
	ids := []string{"dns:a.internal", "dns:b.internal", "dns:c.internal", "dns:d.internal", "dns:e.internal", "ip:10.1.2.3"}
	o, orderURL := c.newOrder(ids...)
	for _, au := range o.Authorizations {
		a := c.authz(au)
		if r := c.post(a.Challenges[0].URL, struct{}{}); r.status != http.StatusOK {
			t.Fatalf("trigger: %d %s", r.status, r.body)
		}
	}
	close(gate)
	o = c.waitOrder(orderURL, core.StatusPending)
	if o.Status != core.StatusReady {
		t.Fatalf("order = %+v", o)
	}
	for _, au := range o.Authorizations {
		if a := c.authz(au); a.Status != core.StatusValid {
			t.Errorf("authz %s = %s", au, a.Status)
		}
	}
}

func TestAuthzDeactivation(t *testing.T) {
	tests := []struct {
		name       string
		solve      bool
		payload    any
		wantStatus int
		wantType   string
		wantOrder  core.Status
	}{
		{"pending", false, map[string]string{"status": "deactivated"}, 200, "", core.StatusInvalid},
		{"valid, order ready", true, map[string]string{"status": "deactivated"}, 200, "", core.StatusInvalid},
		{"other status", false, map[string]string{"status": "valid"}, 400, "malformed", core.StatusPending},
		{"no status", false, map[string]string{}, 400, "malformed", core.StatusPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			c := env.newClient(t)
			c.register()
			o, orderURL := c.newOrder("dns:a.internal", "dns:b.internal")
			if tt.solve {
				if o = c.solve(o, orderURL, ""); o.Status != core.StatusReady {
					t.Fatalf("order %s", o.Status)
				}
			}
			r := c.post(o.Authorizations[0], tt.payload)
			if tt.wantType != "" {
				r.wantProblem(t, tt.wantStatus, tt.wantType)
			} else {
				var a authzJSON
				r.decode(t, &a)
				if r.status != tt.wantStatus || a.Status != core.StatusDeactivated {
					t.Fatalf("deactivate: %d %+v", r.status, a)
				}
				// Deactivating twice is harmless; a deactivated authz
				// cannot be used.
				if r := c.post(o.Authorizations[0], tt.payload); r.status != http.StatusOK {
					t.Errorf("again: %d %s", r.status, r.body)
				}
			}
			if got := c.order(orderURL); got.Status != tt.wantOrder {
				t.Errorf("order = %s, want %s", got.Status, tt.wantOrder)
			}
		})
	}
}

func TestExpiryOnRead(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.OrderLifetime = time.Hour; o.AuthzLifetime = 2 * time.Hour })
	c := env.newClient(t)
	c.register()
	pending, pendingURL := c.newOrder("dns:a.internal")
	ready, readyURL := c.newOrder("dns:b.internal")
	ready = c.solve(ready, readyURL, "")
	env.now.Advance(90 * time.Minute)

	tests := []struct {
		name string
		url  string
		want core.Status
	}{
		{"pending order", pendingURL, core.StatusInvalid},
		{"ready order", readyURL, core.StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := c.order(tt.url)
			if o.Status != tt.want || o.Error == nil {
				t.Errorf("order = %+v", o)
			}
			// Persisted: the store agrees.
			stored, err := env.store.GetOrder(t.Context(), lastSegment(tt.url))
			if err != nil || stored.Status != tt.want {
				t.Errorf("stored = %+v, %v", stored, err)
			}
		})
	}
	env.now.Advance(time.Hour)
	if a := c.authz(pending.Authorizations[0]); a.Status != core.StatusInvalid {
		t.Errorf("pending authz past expiry = %s", a.Status)
	}
	if a := c.authz(ready.Authorizations[0]); a.Status != core.StatusExpired {
		t.Errorf("valid authz past expiry = %s", a.Status)
	}
	c.post(ready.Finalize, map[string]string{"csr": csrFor(t, "dns:b.internal")}).wantProblem(t, 403, "orderNotReady")
}

func lastSegment(u string) string {
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == '/' {
			return u[i+1:]
		}
	}
	return u
}

func TestOtherAccountsResources(t *testing.T) {
	env := newEnv(t)
	owner := env.newClient(t)
	owner.register()
	o, orderURL := owner.issue("dns:a.internal")
	a := owner.authz(o.Authorizations[0])
	intruder := env.newClient(t)
	intruder.register()
	for _, u := range []string{orderURL, o.Authorizations[0], a.Challenges[0].URL, o.Certificate, o.Finalize} {
		t.Run(u, func(t *testing.T) {
			var pl any
			if u == o.Finalize {
				pl = map[string]string{"csr": csrFor(t, "dns:a.internal")}
			}
			intruder.post(u, pl).wantProblem(t, 403, "unauthorized")
		})
	}
	intruder.post(env.url("/order/nosuchorder"), nil).wantProblem(t, 404, "malformed")
}

// TestDeactivationDuringValidation: the validation result is recorded
// from the authorization as the challenge request stored it; when the
// client deactivates the authorization meanwhile, the result must not
// undo the deactivation (the stale copy loses on its version).
func TestDeactivationDuringValidation(t *testing.T) {
	env := newEnv(t, noValidationWait)
	gate := make(chan struct{})
	env.validator.gate = gate
	c, orderURL, authzURL := startHeldValidation(t, env)
	if r := c.post(authzURL, map[string]string{"status": "deactivated"}); r.status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", r.status, r.body)
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.authz(authzURL)
		if got.Status != core.StatusDeactivated {
			t.Fatalf("authz = %s after the validation, want deactivated", got.Status)
		}
		if got.Challenges[0].Status == core.StatusValid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the validation result was not recorded: %+v", got.Challenges[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.order(orderURL); got.Status != core.StatusInvalid {
		t.Errorf("order = %s, want invalid", got.Status)
	}
}
