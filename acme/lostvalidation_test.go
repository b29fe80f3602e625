package acme

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

// startHeldValidation orders a.internal and triggers its first challenge
// with validations held at a gate, as a node that crashed mid-validation
// leaves it: processing, with nothing that will finish it. It returns the
// client, the order URL and the authorization URL.
// newHeldEnv is a test environment whose validations wait until release
// is called (at the latest when the test ends).
func newHeldEnv(t *testing.T) (env *testEnv, release func()) {
	t.Helper()
	env = newEnv(t, noValidationWait)
	gate := make(chan struct{})
	env.validator.gate = gate
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	return env, release
}

func startHeldValidation(t *testing.T, env *testEnv) (*testClient, string, string) {
	t.Helper()
	c := env.newClient(t)
	c.register()
	o, orderURL := c.newOrder("dns:a.internal")
	a := c.authz(o.Authorizations[0])
	if r := c.post(a.Challenges[0].URL, struct{}{}); r.status != http.StatusOK {
		t.Fatalf("trigger: %d %s", r.status, r.body)
	}
	if a = c.authz(o.Authorizations[0]); a.Challenges[0].Status != core.StatusProcessing {
		t.Fatalf("challenge %s, want processing", a.Challenges[0].Status)
	}
	return c, orderURL, o.Authorizations[0]
}

// TestLostValidationEnds: a challenge left processing for longer than
// three validation timeouts (its validation lost with its node) fails,
// with a serverInternal error saying so, and so do its authorization and
// order, whether the client polls the authorization or the order; a late
// result of the lost validation changes nothing. Before that, and for a
// challenge stored without a start time, it stays processing.
func TestLostValidationEnds(t *testing.T) {
	for _, poll := range []string{"authorization", "order"} {
		t.Run("polling the "+poll, func(t *testing.T) {
			env, release := newHeldEnv(t)
			c, orderURL, authzURL := startHeldValidation(t, env)

			env.now.Advance(lostValidationFactor*DefaultValidationTimeout - time.Second)
			if a := c.authz(authzURL); a.Status != core.StatusPending || a.Challenges[0].Status != core.StatusProcessing {
				t.Fatalf("before the bound: authz %s, challenge %s", a.Status, a.Challenges[0].Status)
			}
			env.now.Advance(2 * time.Second)
			if poll == "order" {
				if o := c.order(orderURL); o.Status != core.StatusInvalid {
					t.Fatalf("order %s, want invalid", o.Status)
				}
			}
			a := c.authz(authzURL)
			ch := a.Challenges[0]
			if a.Status != core.StatusInvalid || ch.Status != core.StatusInvalid || ch.Error == nil ||
				ch.Error.Type != problemPrefix+"serverInternal" {
				t.Fatalf("after the bound: authz %s, challenge %+v", a.Status, ch)
			}
			if o := c.order(orderURL); o.Status != core.StatusInvalid {
				t.Fatalf("order %s, want invalid", o.Status)
			}
			// The lost validation comes back after all: too late.
			release()
			env.srv.Close()
			if a := c.authz(authzURL); a.Status != core.StatusInvalid || a.Challenges[0].Status != core.StatusInvalid {
				t.Fatalf("after the late result: authz %s, challenge %s", a.Status, a.Challenges[0].Status)
			}
		})
	}
	t.Run("stored without a start time", func(t *testing.T) {
		env, _ := newHeldEnv(t)
		c, _, authzURL := startHeldValidation(t, env)
		ctx := context.Background()
		stored, err := env.store.GetAuthorization(ctx, lastSegment(authzURL))
		if err != nil {
			t.Fatal(err)
		}
		stored.Challenges[0].Started = time.Time{}
		if err := env.store.UpdateAuthorization(ctx, stored); err != nil {
			t.Fatal(err)
		}
		env.now.Advance(100 * lostValidationFactor * DefaultValidationTimeout)
		if a := c.authz(authzURL); a.Challenges[0].Status != core.StatusProcessing {
			t.Fatalf("challenge %s, want processing", a.Challenges[0].Status)
		}
	})
}

// blockingValidator holds every validation until release is closed,
// whatever its context says: a validation that overruns its timeout.
type blockingValidator struct{ release chan struct{} }

func (v blockingValidator) Validate(context.Context, core.ChallengeInput) error {
	<-v.release
	return nil
}

// TestValidationQueueIsBounded: a validation that cannot get a slot on the
// pool within one validation timeout fails with a serverInternal error
// (so that no validation outlives the bound of TestLostValidationEnds)
// instead of waiting for ever.
func TestValidationQueueIsBounded(t *testing.T) {
	v := blockingValidator{release: make(chan struct{})}
	env := newEnv(t, noValidationWait, func(o *Options) {
		o.ValidationWorkers, o.ValidationTimeout = 1, 200*time.Millisecond
		o.Provisioners[0].Validator = v
	})
	t.Cleanup(func() { close(v.release) })
	c := env.newClient(t)
	c.register()
	var authzURLs []string
	for _, name := range []string{"dns:a.internal", "dns:b.internal"} {
		o, _ := c.newOrder(name)
		a := c.authz(o.Authorizations[0])
		if r := c.post(a.Challenges[0].URL, struct{}{}); r.status != http.StatusOK {
			t.Fatalf("trigger: %d %s", r.status, r.body)
		}
		authzURLs = append(authzURLs, o.Authorizations[0])
	}
	// The first holds the only slot; the second gives up after 200ms.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := c.authz(authzURLs[1])
		if a.Status == core.StatusInvalid {
			if e := a.Challenges[0].Error; e == nil || e.Type != problemPrefix+"serverInternal" {
				t.Fatalf("challenge error %+v", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queued validation is still %s", a.Challenges[0].Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := c.authz(authzURLs[0]); a.Challenges[0].Status != core.StatusProcessing {
		t.Fatalf("the running validation is %s", a.Challenges[0].Status)
	}
}

// TestAskingAgainWhileProcessingStartsNothing: a client that posts to a
// challenge again while its validation runs (e.g. after its own HTTP
// timeout) gets the processing challenge back, and no second validation:
// one could outlive the first one's deadline (and be declared lost), and
// each would take a slot of the pool.
func TestAskingAgainWhileProcessingStartsNothing(t *testing.T) {
	env, release := newHeldEnv(t)
	c, _, authzURL := startHeldValidation(t, env)
	chURL := c.authz(authzURL).Challenges[0].URL
	for range 3 {
		r := c.post(chURL, struct{}{})
		var ch challengeJSON
		r.decode(t, &ch)
		if r.status != http.StatusOK || ch.Status != core.StatusProcessing {
			t.Fatalf("asking again: %d, challenge %s", r.status, ch.Status)
		}
	}
	release()
	env.srv.Close() // waits for the validations in flight
	if n := len(env.validator.Calls()); n != 1 {
		t.Fatalf("%d validations, want 1", n)
	}
	if a := c.authz(authzURL); a.Status != core.StatusValid {
		t.Fatalf("authorization %s, want valid", a.Status)
	}
}
