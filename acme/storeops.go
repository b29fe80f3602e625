package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// maxUpdateAttempts bounds the reload-and-retry loop of versioned updates.
// Conflicts only come from concurrent writers of one object, so a handful
// of attempts is plenty; past that something is wrong.
const maxUpdateAttempts = 16

// versioned retries a read-modify-write until the store accepts it.
// mutate returns false when the object needs no write (its current state
// already satisfies the caller), which ends the loop without writing.
func versioned[T any](ctx context.Context, load func() (T, error), mutate func(T) (bool, error), save func(T) error) (T, error) {
	var zero T
	for range maxUpdateAttempts {
		v, err := load()
		if err != nil {
			return zero, err
		}
		changed, err := mutate(v)
		if err != nil || !changed {
			return v, err
		}
		err = save(v)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return zero, storeError(err, "cannot save")
		}
		if ctx.Err() != nil {
			return zero, core.Wrap(core.KindServerInternal, ctx.Err(), "request cancelled")
		}
	}
	return zero, core.Errorf(core.KindServerInternal, "too many concurrent updates, retry later")
}

// storeError turns a store failure into a typed error; a missing object is
// notFound, anything else is serverInternal with the cause kept for logs.
func storeError(err error, what string) error {
	var ce *core.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, store.ErrNotFound):
		return core.Errorf(core.KindNotFound, "%s: not found", what)
	default:
		return core.Wrap(core.KindServerInternal, err, "%s", what)
	}
}

func (s *Server) getAccount(ctx context.Context, id string) (*core.Account, error) {
	a, err := s.store.GetAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, core.Errorf(core.KindAccountDoesNotExist, "no such account")
	}
	if err != nil {
		return nil, storeError(err, "cannot load account")
	}
	return a, nil
}

func (s *Server) updateAccount(ctx context.Context, id string, mutate func(*core.Account) (bool, error)) (*core.Account, error) {
	return versioned(ctx,
		func() (*core.Account, error) { return s.getAccount(ctx, id) },
		mutate,
		func(a *core.Account) error { return s.store.UpdateAccount(ctx, a) })
}

func (s *Server) loadOrder(ctx context.Context, id string) (*core.Order, error) {
	o, err := s.store.GetOrder(ctx, id)
	if err != nil {
		return nil, storeError(err, "order")
	}
	return o, nil
}

func (s *Server) updateOrder(ctx context.Context, id string, mutate func(*core.Order) (bool, error)) (*core.Order, error) {
	return versioned(ctx,
		func() (*core.Order, error) { return s.loadOrder(ctx, id) },
		mutate,
		func(o *core.Order) error { return s.store.UpdateOrder(ctx, o) })
}

// updateOrderFrom is updateOrder starting from o, which the caller loaded
// (or saved) in this request: the first attempt costs no read, and a
// version conflict reloads as updateOrder does. o may be modified.
func (s *Server) updateOrderFrom(ctx context.Context, o *core.Order, mutate func(*core.Order) (bool, error)) (*core.Order, error) {
	return versioned(ctx,
		firstThen(o, func() (*core.Order, error) { return s.loadOrder(ctx, o.ID) }),
		mutate,
		func(o *core.Order) error { return s.store.UpdateOrder(ctx, o) })
}

// firstThen returns a loader that yields v once, then calls load.
func firstThen[T any](v T, load func() (T, error)) func() (T, error) {
	used := false
	return func() (T, error) {
		if used {
			return load()
		}
		used = true
		return v, nil
	}
}

func (s *Server) loadAuthz(ctx context.Context, id string) (*core.Authorization, error) {
	a, err := s.store.GetAuthorization(ctx, id)
	if err != nil {
		return nil, storeError(err, "authorization")
	}
	return a, nil
}

func (s *Server) updateAuthz(ctx context.Context, id string, mutate func(*core.Authorization) (bool, error)) (*core.Authorization, error) {
	return versioned(ctx,
		func() (*core.Authorization, error) { return s.loadAuthz(ctx, id) },
		mutate,
		func(a *core.Authorization) error { return s.store.UpdateAuthorization(ctx, a) })
}

// updateAuthzFrom is updateAuthz starting from a, which the caller loaded
// in this request (see updateOrderFrom). a may be modified.
func (s *Server) updateAuthzFrom(ctx context.Context, a *core.Authorization, mutate func(*core.Authorization) (bool, error)) (*core.Authorization, error) {
	return versioned(ctx,
		firstThen(a, func() (*core.Authorization, error) { return s.loadAuthz(ctx, a.ID) }),
		mutate,
		func(a *core.Authorization) error { return s.store.UpdateAuthorization(ctx, a) })
}

// randomString returns n random bytes, base64url without padding
// (challenge tokens use 32; object IDs come from core.NewID).
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
