package acme

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

func TestFinalizeRefusals(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register()
	pending, _ := c.newOrder("dns:a.internal")
	ready, readyURL := c.newOrder("dns:b.internal")
	ready = c.solve(ready, readyURL, "")
	tests := []struct {
		name       string
		url        string
		payload    any
		wantStatus int
		wantType   string
	}{
		{"before ready", pending.Finalize, map[string]string{"csr": csrFor(t, "dns:a.internal")}, 403, "orderNotReady"},
		{"no csr", ready.Finalize, map[string]string{}, 400, "malformed"},
		{"csr not base64url", ready.Finalize, map[string]string{"csr": "!!!"}, 400, "badCSR"},
		{"csr not DER", ready.Finalize, map[string]string{"csr": "AAAA"}, 400, "badCSR"},
		{"post-as-get", ready.Finalize, nil, 400, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.post(tt.url, tt.payload).wantProblem(t, tt.wantStatus, tt.wantType)
		})
	}
	// None of that reached the CA or moved the ready order.
	if n := env.authority.signs.Load(); n != 0 {
		t.Errorf("Sign called %d times", n)
	}
	if o := c.order(readyURL); o.Status != core.StatusReady {
		t.Errorf("order = %s", o.Status)
	}
}

func TestFinalizeSignErrors(t *testing.T) {
	tests := []struct {
		name      string
		signErr   error
		wantType  string
		wantOrder core.Status
	}{
		{"bad CSR keeps the order ready", core.Errorf(core.KindBadCSR, "names do not match the order"), "badCSR", core.StatusReady},
		{"policy refusal ends the order", core.Errorf(core.KindRejectedIdentifier, "refused at sign time"), "rejectedIdentifier", core.StatusInvalid},
		{"internal error ends the order", errPlain("hsm on fire"), "serverInternal", core.StatusInvalid},
		// The CA unreachable from an RA, or its database down: the same
		// order must succeed on retry, with the Retry-After it was given.
		{"retryable error keeps the order ready", &core.Error{Kind: core.KindServerInternal, Detail: "the CA is unreachable", RetryAfter: 30}, "serverInternal", core.StatusReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.authority.signErr = tt.signErr
			c := env.newClient(t)
			c.register()
			o, u := c.newOrder("dns:a.internal")
			o = c.solve(o, u, "")
			r := c.post(o.Finalize, map[string]string{"csr": csrFor(t, "dns:a.internal")})
			p := r.wantProblem(t, ProblemFor(tt.signErr).Status, tt.wantType)
			if e, ok := tt.signErr.(*core.Error); ok && e.RetryAfter > 0 {
				if got := r.header.Get("Retry-After"); got != "30" {
					t.Errorf("Retry-After = %q, want 30", got)
				}
			} else if tt.wantType == "serverInternal" && p.Detail != "internal error" {
				t.Errorf("internal cause leaked: %q", p.Detail)
			}
			got := c.order(u)
			if got.Status != tt.wantOrder {
				t.Fatalf("order = %s, want %s", got.Status, tt.wantOrder)
			}
			if tt.wantOrder == core.StatusInvalid && (got.Error == nil || got.Error.Type != problemPrefix+tt.wantType) {
				t.Errorf("order error = %+v", got.Error)
			}
			if tt.wantOrder == core.StatusReady {
				// The client can try again, and this time it works.
				env.authority.signErr = nil
				r := c.post(o.Finalize, map[string]string{"csr": csrFor(t, "dns:a.internal")})
				var fin orderJSON
				r.decode(t, &fin)
				if r.status != http.StatusOK || fin.Status != core.StatusValid {
					t.Errorf("retry: %d %s", r.status, r.body)
				}
			}
		})
	}
}

// TestConcurrentFinalize: of ten simultaneous finalize calls exactly one
// reaches the CA.
func TestConcurrentFinalize(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register()
	o, u := c.newOrder("dns:a.internal")
	o = c.solve(o, u, "")
	const n = 10
	bodies := make([][]byte, n)
	for i := range bodies {
		// Each request needs its own nonce; sign them all up front so they
		// go out together.
		bodies[i] = c.sign(o.Finalize, []byte(`{"csr":"`+csrFor(t, "dns:a.internal")+`"}`), signOpts{})
		c.last = ""
	}
	statuses := make([]int, n)
	types := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := http.NewRequest(http.MethodPost, o.Finalize, bytesReader(bodies[i]))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/jose+json")
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			statuses[i] = resp.StatusCode
			types[i] = resp.Header.Get("Content-Type")
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i := range n {
		switch {
		case statuses[i] == http.StatusOK:
			ok++
		case statuses[i] == http.StatusForbidden && types[i] == "application/problem+json":
		default:
			t.Errorf("request %d: status %d", i, statuses[i])
		}
	}
	if ok != 1 || env.authority.signs.Load() != 1 {
		t.Errorf("%d successes and %d Sign calls, want 1 and 1", ok, env.authority.signs.Load())
	}
	if got := c.order(u); got.Status != core.StatusValid || got.Certificate == "" {
		t.Errorf("order = %+v", got)
	}
}

func TestRecoverStaleOrders(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register()
	_, staleURL := c.newOrder("dns:a.internal")
	_, freshURL := c.newOrder("dns:b.internal")
	ctx := context.Background()
	for _, tc := range []struct {
		url   string
		since time.Time
	}{{staleURL, time.Now().Add(-time.Hour)}, {freshURL, time.Now()}} {
		o, err := env.store.GetOrder(ctx, lastSegment(tc.url))
		if err != nil {
			t.Fatal(err)
		}
		o.Status, o.ProcessingSince = core.StatusProcessing, tc.since
		if err := env.store.UpdateOrder(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	n, err := env.srv.RecoverStaleOrders(ctx, 10*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("RecoverStaleOrders = %d, %v", n, err)
	}
	tests := []struct {
		url  string
		want core.Status
	}{{staleURL, core.StatusInvalid}, {freshURL, core.StatusProcessing}}
	for _, tt := range tests {
		r := c.post(tt.url, nil)
		var o orderJSON
		r.decode(t, &o)
		if o.Status != tt.want {
			t.Errorf("%s: %s, want %s", tt.url, o.Status, tt.want)
		}
		if tt.want == core.StatusInvalid && (o.Error == nil || o.Error.Type != problemPrefix+"serverInternal") {
			t.Errorf("error = %+v", o.Error)
		}
		if tt.want == core.StatusProcessing && r.header.Get("Retry-After") == "" {
			t.Error("processing order without Retry-After")
		}
	}
}

// TestCloseWaitsForValidations: Close returns only after running
// validations recorded their result, and later triggers are refused.
func TestCloseWaitsForValidations(t *testing.T) {
	env := newEnv(t, noValidationWait)
	gate := make(chan struct{})
	env.validator.gate = gate
	c := env.newClient(t)
	c.register()
	o, _ := c.newOrder("dns:a.internal", "dns:b.internal")
	a := c.authz(o.Authorizations[0])
	if r := c.post(a.Challenges[0].URL, struct{}{}); r.status != http.StatusOK {
		t.Fatalf("trigger: %d", r.status)
	}
	closed := make(chan struct{})
	go func() {
		env.srv.Close()
		close(closed)
	}()
	close(gate)
	<-closed
	stored, err := env.store.GetAuthorization(context.Background(), lastSegment(o.Authorizations[0]))
	if err != nil || stored.Status != core.StatusValid {
		t.Fatalf("after Close: %+v, %v", stored, err)
	}
	b := c.authz(o.Authorizations[1])
	c.post(b.Challenges[0].URL, struct{}{}).wantProblem(t, 500, "serverInternal")
}

// TestSweepStaleOrdersFirstSweepBeforeReturn: the sweep every ACME process
// starts has ended stale orders when it returns, before the process serves.
func TestSweepStaleOrdersFirstSweepBeforeReturn(t *testing.T) {
	env := newEnv(t)
	c := env.newClient(t)
	c.register()
	_, u := c.newOrder("dns:a.internal")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, err := env.store.GetOrder(ctx, lastSegment(u))
	if err != nil {
		t.Fatal(err)
	}
	o.Status, o.ProcessingSince = core.StatusProcessing, time.Now().Add(-time.Hour)
	if err := env.store.UpdateOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	env.srv.SweepStaleOrders(ctx, 10*time.Minute)
	got, err := env.store.GetOrder(ctx, o.ID)
	if err != nil || got.Status != core.StatusInvalid {
		t.Fatalf("order after the first sweep: %v %v, want invalid", got.Status, err)
	}
}
