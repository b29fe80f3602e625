package acme

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"

	"github.com/policyca/policyca/acme/jws"
	"github.com/policyca/policyca/core"
)

// handleChallenge is POST-as-GET of a challenge, or, with a JSON object
// payload (normally {}), the client's signal that the challenge is ready to
// be validated (§7.5.1). Validation runs on the bounded validation pool;
// the request waits for it up to validationWait and answers with the
// challenge as it then is: valid or invalid when the validation was quick
// (the usual case on an internal network, which spares the client its
// polls), processing with a Retry-After otherwise.
func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	challID := mux.Vars(r)["chall"]
	a, err := s.ownAuthz(ctx, req, mux.Vars(r)["authz"])
	if err != nil {
		return err
	}
	if findChallenge(a, challID) == nil {
		return core.Errorf(core.KindNotFound, "challenge: not found")
	}
	if req.postAsGet() {
		a, err = s.refreshAuthz(ctx, a)
	} else {
		var ignored map[string]any
		if err := decodePayload(req.payload, &ignored); err != nil {
			return err
		}
		a, err = s.startChallenge(ctx, req, a, challID)
	}
	if err != nil {
		return err
	}
	c := findChallenge(a, challID)
	w.Header().Add("Link", link(req.prov.authzURL(a.ID), "up"))
	if c.Status == core.StatusProcessing {
		w.Header().Set("Retry-After", retryAfterProcessing)
	}
	writeJSON(w, http.StatusOK, req.prov.challengeJSON(a, c))
	return nil
}

func findChallenge(a *core.Authorization, id string) *core.Challenge {
	for i := range a.Challenges {
		if a.Challenges[i].ID == id {
			return &a.Challenges[i]
		}
	}
	return nil
}

// startChallenge moves a pending challenge to processing and queues its
// validation. Asking again, or asking for a challenge that is no longer
// pending, just returns the current state: clients retry.
func (s *Server) startChallenge(ctx context.Context, req *request, loaded *core.Authorization, challID string) (*core.Authorization, error) {
	authzID := loaded.ID
	if !s.reserveValidation() {
		return nil, &core.Error{Kind: core.KindServerInternal, Detail: "server is shutting down, retry later", RetryAfter: 5}
	}
	// mine: this request moved the challenge to processing, and so runs
	// its validation. A client that asks again while it is processing gets
	// the current state, not a second validation (which could outlive the
	// first one's deadline, see expireLostValidations, or take a second
	// slot of the pool).
	started, expired, mine := false, false, false
	defer func() {
		if !started {
			s.wg.Done()
		}
	}()
	a, err := s.updateAuthzFrom(ctx, loaded, func(a *core.Authorization) (bool, error) {
		mine = false // the callback runs again after a conflict
		c := findChallenge(a, challID)
		if c == nil {
			return false, core.Errorf(core.KindNotFound, "challenge: not found")
		}
		// A validation lost with its node ends here (see
		// expireLostValidations); it makes the authorization invalid.
		expired = s.expireLostValidations(a)
		if authzStatus(a, s.now()) != core.StatusPending || c.Status != core.StatusPending {
			return expired, nil
		}
		for i := range a.Challenges {
			if a.Challenges[i].Status == core.StatusProcessing {
				return false, core.Errorf(core.KindMalformed, "another challenge of this authorization is being validated")
			}
		}
		c.Status, c.Started = core.StatusProcessing, s.now().UTC()
		mine = true
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if expired {
		s.endLostValidation(ctx, a)
	}
	if !mine {
		return a, nil
	}
	c := findChallenge(a, challID) // processing: this request's update made it so
	keyAuth, err := jws.KeyAuthorization(c.Token, req.key)
	if err != nil {
		// The challenge is processing already: record the failure on it
		// rather than leaving it stuck.
		if done := s.finishChallenge(context.WithoutCancel(ctx), snapshot(a), challID, err); done != nil {
			return done, nil
		}
		return s.loadAuthz(ctx, authzID)
	}
	in := core.ChallengeInput{Type: c.Type, Identifier: a.Identifier, Token: c.Token, KeyAuthorization: keyAuth}
	started = true
	result := make(chan *core.Authorization, 1)
	go s.validate(context.WithoutCancel(ctx), req.prov, snapshot(a), challID, in, result)
	return s.awaitValidation(ctx, a, result), nil
}

// awaitValidation waits up to validationWait for a validation started by
// this request and returns the authorization as the validation left it,
// or a (processing) if it takes longer, the client goes away, or its
// result could not be recorded. The validation goes on either way.
func (s *Server) awaitValidation(ctx context.Context, a *core.Authorization, result <-chan *core.Authorization) *core.Authorization {
	if s.validationWait < 0 {
		return a
	}
	t := time.NewTimer(s.validationWait)
	defer t.Stop()
	select {
	case done := <-result:
		if done != nil {
			return done
		}
	case <-t.C:
	case <-ctx.Done():
	}
	return a
}

// reserveValidation counts a validation in before it starts, so that Close
// either refuses it or waits for it.
func (s *Server) reserveValidation() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// snapshot copies an authorization as far as finishChallenge changes it,
// so that the copy can be updated while the original is being rendered.
func snapshot(a *core.Authorization) *core.Authorization {
	cp := *a
	cp.Challenges = slices.Clone(a.Challenges)
	return &cp
}

// validate runs one validation on the bounded pool and records its result.
// ctx carries the request's logger but not its cancellation: the client
// does not wait for the validation. a is the authorization as this
// request stored it (a snapshot). The authorization with the result
// recorded (nil if it could not be) is sent on result, which must have
// room for it.
func (s *Server) validate(ctx context.Context, p *provisioner, a *core.Authorization, challID string, in core.ChallengeInput, result chan<- *core.Authorization) {
	defer s.wg.Done()
	queued := time.NewTimer(s.validationTimeout)
	select {
	case s.sem <- struct{}{}:
		queued.Stop()
	case <-queued.C:
		// Waiting longer, the validation could outlast the bound after
		// which it counts as lost (lostValidationFactor).
		s.logger(ctx).Warn("challenge not validated: no validation slot", "authz", a.ID, "challenge", challID,
			"waited", s.validationTimeout)
		result <- s.finishChallenge(ctx, a, challID, &core.Error{Kind: core.KindServerInternal,
			Detail: "the server is validating too many challenges; try again with a new order"})
		return
	}
	defer func() { <-s.sem }()
	vctx, cancel := context.WithTimeout(ctx, s.validationTimeout)
	err := s.runValidator(vctx, p.Validator, in)
	cancel()
	s.logger(ctx).Info("challenge validated", "authz", a.ID, "challenge", challID,
		"type", in.Type, "identifier", in.Identifier.Value, "ok", err == nil, "error", errString(err))
	result <- s.finishChallenge(ctx, a, challID, err)
}

// runValidator turns a panicking validator into a serverInternal result,
// so one bad validation cannot leave its challenge processing forever.
func (s *Server) runValidator(ctx context.Context, v Validator, in core.ChallengeInput) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = core.Wrap(core.KindServerInternal, fmt.Errorf("panic: %v", r), "validation failed")
		}
	}()
	return v.Validate(ctx, in)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// finishChallenge records a validation result on the challenge and its
// authorization, then advances the order. Each step is a versioned update,
// so results of several challenges of one order landing together all count.
// The update starts from snap, the authorization as the challenge request
// stored it, and reads it again only if it has changed since (a version
// conflict), which saves a read per validation. It returns the updated
// authorization, or nil if the result could not be recorded.
func (s *Server) finishChallenge(ctx context.Context, snap *core.Authorization, challID string, verr error) *core.Authorization {
	authzID := snap.ID
	now := s.now().UTC()
	var problem *core.Error
	if verr != nil {
		e := core.AsError(verr)
		// Store only what a client may see: the cause stays in the log.
		problem = &core.Error{Kind: e.Kind, Detail: e.Detail, Identifier: e.Identifier, Subproblems: e.Subproblems}
	}
	a, err := s.updateAuthzFrom(ctx, snap, func(a *core.Authorization) (bool, error) {
		c := findChallenge(a, challID)
		if c == nil || c.Status != core.StatusProcessing {
			return false, nil
		}
		if problem == nil {
			c.Status, c.Validated = core.StatusValid, now
			if a.Status == core.StatusPending {
				a.Status = core.StatusValid
			}
		} else {
			c.Status, c.Error = core.StatusInvalid, problem
			if a.Status == core.StatusPending {
				a.Status = core.StatusInvalid
			}
		}
		return true, nil
	})
	if err != nil {
		s.logger(ctx).Error("cannot record validation result", "authz", authzID, "challenge", challID, "error", err)
		return nil
	}
	s.advanceOrderFor(ctx, a)
	return a
}

// endLostValidation logs that a's lost validation was ended (by
// expireLostValidations) and moves its order on.
func (s *Server) endLostValidation(ctx context.Context, a *core.Authorization) {
	s.logger(ctx).Warn("challenge validation lost (its node stopped, or could not record the result); challenge made invalid",
		"authz", a.ID, "authz_status", a.Status, "order", a.OrderID, "identifier", a.Identifier.Value)
	s.advanceOrderFor(ctx, a)
}

// advanceOrderFor moves a's order on after a's status changed (ready when
// every authorization is valid, invalid when one failed).
func (s *Server) advanceOrderFor(ctx context.Context, a *core.Authorization) {
	if _, err := s.updateOrder(ctx, a.OrderID, func(o *core.Order) (bool, error) {
		return s.advanceOrderWith(ctx, o, a)
	}); err != nil {
		s.logger(ctx).Error("cannot advance order", "order", a.OrderID, "error", err)
	}
}

// lostValidationFactor times the validation timeout is how long a
// challenge may stay processing: a validation waits at most one timeout for
// a slot on the pool and runs at most one more, so one still processing
// after three was lost (its node crashed or was killed before recording
// the result), and nothing will ever finish it.
const lostValidationFactor = 3

// expireLostValidations makes every challenge of a that has been
// processing for longer than lostValidationFactor validation timeouts
// invalid, with a serverInternal error saying so, and a invalid if it was
// pending. Challenges stored without a start time are left alone. It
// reports whether it changed a.
func (s *Server) expireLostValidations(a *core.Authorization) bool {
	cutoff := s.lostValidationCutoff()
	changed := false
	for i := range a.Challenges {
		c := &a.Challenges[i]
		if !lostValidation(c, cutoff) {
			continue
		}
		c.Status = core.StatusInvalid
		c.Error = &core.Error{Kind: core.KindServerInternal,
			Detail: "the validation was interrupted (the server running it stopped or could not record its result); try again with a new order"}
		if a.Status == core.StatusPending {
			a.Status = core.StatusInvalid
		}
		changed = true
	}
	return changed
}

// hasLostValidation reports whether expireLostValidations would change a.
func (s *Server) hasLostValidation(a *core.Authorization) bool {
	cutoff := s.lostValidationCutoff()
	for i := range a.Challenges {
		if lostValidation(&a.Challenges[i], cutoff) {
			return true
		}
	}
	return false
}

func (s *Server) lostValidationCutoff() time.Time {
	return s.now().Add(-lostValidationFactor * s.validationTimeout)
}

// lostValidation: c has been processing since before cutoff.
func lostValidation(c *core.Challenge, cutoff time.Time) bool {
	return c.Status == core.StatusProcessing && !c.Started.IsZero() && c.Started.Before(cutoff)
}
