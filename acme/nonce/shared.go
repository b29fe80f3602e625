package nonce

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/tick"
	"github.com/policyca/policyca/store"
)

// SharedStore is what Shared needs from the database all nodes share.
type SharedStore interface {
	ClusterSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
	RedeemNonce(ctx context.Context, nonce string, expires time.Time) error
	PruneNonces(ctx context.Context, before time.Time) (int64, error)
}

// SecretName is the name of the nonce MAC key among the cluster secrets.
const SecretName = "acme-nonce-hmac-v1"

// Defaults of SharedOptions.
const (
	DefaultWindow     = time.Hour
	DefaultMaxSkew    = time.Minute
	DefaultPruneEvery = 5 * time.Minute
)

// Layout of a shared nonce before base64url: a version byte, the issue time
// (unix milliseconds), 8 random bytes, and the first 16 bytes of
// HMAC-SHA256 over all of that. 33 bytes encode to 44 characters with no
// padding bits, so every nonce has exactly one spelling.
const (
	sharedVersion = 1
	sharedBodyLen = 1 + 8 + 8
	sharedMACLen  = 16
	sharedLen     = sharedBodyLen + sharedMACLen
)

var sharedEncodedLen = base64.RawURLEncoding.EncodedLen(sharedLen)

// SharedOptions configure NewShared; zero values take the defaults.
type SharedOptions struct {
	// Window is how long a nonce stays redeemable after it was issued
	// (default DefaultWindow). Redeemed nonces are remembered that long.
	Window time.Duration
	// MaxSkew is the clock difference tolerated between nodes (default
	// DefaultMaxSkew): a nonce stamped up to MaxSkew in the future is
	// accepted, and records are kept MaxSkew longer than Window.
	MaxSkew time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// Logger receives pruning failures; defaults to slog.Default().
	Logger *slog.Logger
}

// Shared is a nonce source for several nodes on one database: a nonce
// issued by any node is accepted once by any node, never twice.
//
// Nonces authenticate themselves with an HMAC under a key kept among the
// database's cluster secrets (created by the first node that needs it), and
// carry their issue time, so issuing costs no database access and a forged,
// garbled or expired nonce is refused without one. Redeeming is one INSERT
// into the used-nonce table, whose primary key refuses the second use
// whichever node sees it. Records older than the window are pruned, since
// the age check refuses those nonces anyway.
type Shared struct {
	store   SharedStore
	key     []byte
	window  time.Duration
	maxSkew time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// NewShared loads (or creates) the cluster's nonce key from st.
func NewShared(ctx context.Context, st SharedStore, o SharedOptions) (*Shared, error) {
	if st == nil {
		return nil, errors.New("nonce: NewShared needs a store")
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	if o.Window < 0 || o.MaxSkew < 0 {
		return nil, fmt.Errorf("nonce: negative window %v or skew %v", o.Window, o.MaxSkew)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	key, err := st.ClusterSecret(ctx, SecretName, func() ([]byte, error) {
		k := make([]byte, 32)
		_, err := rand.Read(k)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("nonce: loading the cluster nonce key: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("nonce: the stored cluster nonce key is too short (%d bytes)", len(key))
	}
	return &Shared{store: st, key: key, window: o.Window, maxSkew: o.MaxSkew, now: o.Now, log: o.Logger}, nil
}

// Nonce issues a fresh nonce, without touching the database.
func (s *Shared) Nonce(ctx context.Context) (string, error) {
	var b [sharedLen]byte
	b[0] = sharedVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(s.now().UnixMilli()))
	if _, err := rand.Read(b[9:sharedBodyLen]); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	copy(b[sharedBodyLen:], s.mac(b[:sharedBodyLen]))
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (s *Shared) mac(body []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write(body)
	return h.Sum(nil)[:sharedMACLen]
}

// Redeem accepts a nonce issued by any node sharing the database once.
// Refusals are badNonce; a database failure is serverInternal (with
// Retry-After when the database is unreachable).
func (s *Shared) Redeem(ctx context.Context, nonce string) error {
	if len(nonce) != sharedEncodedLen {
		return badNonce("the nonce is not one this server issues")
	}
	var b [sharedLen]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(nonce)); err != nil || n != sharedLen {
		return badNonce("the nonce is not valid base64url")
	}
	if b[0] != sharedVersion || subtle.ConstantTimeCompare(b[sharedBodyLen:], s.mac(b[:sharedBodyLen])) != 1 {
		return badNonce("the nonce was not issued by this server")
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:9])))
	now := s.now()
	switch {
	case issued.After(now.Add(s.maxSkew)):
		// Only a node with a clock far ahead issues these; refusing them
		// keeps their records from outliving the window.
		return badNonce("the nonce was issued in the future")
	case now.Sub(issued) > s.window:
		return badNonce("the nonce is too old")
	}
	// Kept until no node, whatever its clock within MaxSkew, would still
	// accept the nonce by age.
	err := s.store.RedeemNonce(ctx, nonce, issued.Add(s.window+s.maxSkew))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConflict):
		return badNonce("the nonce has already been used")
	case errors.Is(err, store.ErrUnavailable):
		e := core.Wrap(core.KindServerInternal, err, "the database is temporarily unavailable; retry later")
		e.RetryAfter = 1
		return e
	default:
		return core.Wrap(core.KindServerInternal, err, "cannot check nonce")
	}
}

// Prune deletes the records of nonces too old to be accepted anyway.
func (s *Shared) Prune(ctx context.Context) (int64, error) {
	return s.store.PruneNonces(ctx, s.now())
}

// RunPruner prunes every interval until ctx is done. Every node may run
// one: deleting expired rows is idempotent.
func (s *Shared) RunPruner(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultPruneEvery
	}
	tick.Every(ctx, every, func(ctx context.Context) {
		if n, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("pruning used nonces", "err", err)
		} else if n > 0 {
			s.log.Debug("pruned used nonces", "count", n)
		}
	})
}
