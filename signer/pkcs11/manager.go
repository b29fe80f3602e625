package pkcs11

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/policyca/policyca/pki"
)

// token is the part of an open PKCS#11 token the signers need. crypto11.go
// adapts a crypto11.Context to it; unit tests use a fake. Implementations
// wrap failures of the token or of the connection to it (as opposed to a
// bad request) in *deviceError, including those returned later by the
// Sign methods of the keys they hand out.
type token interface {
	// FindKeyPairs returns the key pairs whose private half matches id
	// and label (either may be empty, not both).
	FindKeyPairs(id, label []byte) ([]crypto.Signer, error)
	// GenerateKeyPair makes a sign-only, sensitive, non-extractable key.
	GenerateKeyPair(spec pki.KeySpec, id, label []byte) (crypto.Signer, error)
	// Close releases the sessions; the keys handed out stop working.
	Close() error
}

// tokenConfig is what a connection to a token needs. It holds the PIN in
// memory and is never printed.
type tokenConfig struct {
	Module      string
	Token       string
	PIN         string
	MaxSessions int
}

type dialFunc func(tokenConfig) (token, error)

// deviceError marks a failure of the HSM or of the session to it: the
// connection is dropped and re-established, and the operation retried.
type deviceError struct{ err error }

func (e *deviceError) Error() string { return e.err.Error() }
func (e *deviceError) Unwrap() error { return e.err }

func isDeviceFault(err error) bool {
	var d *deviceError
	return errors.As(err, &d)
}

// DefaultReconnectInterval is the least time between two attempts to
// reconnect to a failing token: often enough to recover within a second of
// the HSM's return, rarely enough not to hammer an HSM that is down (each
// attempt loads the module, opens sessions and logs in).
const DefaultReconnectInterval = time.Second

// manager caches one connection per (module, token), shared by all keys on
// it, because a crypto11 context is heavy (module load, session pool,
// login) and HSMs limit sessions.
type manager struct {
	dial      dialFunc
	now       func() time.Time
	reconnect time.Duration

	mu    sync.Mutex
	conns map[connKey]*conn
}

type connKey struct{ module, token string }

func newManager(dial dialFunc) *manager {
	return &manager{dial: dial, now: time.Now, reconnect: DefaultReconnectInterval, conns: map[connKey]*conn{}}
}

// conn is a reference-counted, self-healing connection to one token.
type conn struct {
	m    *manager
	key  connKey
	cfg  tokenConfig
	refs int // guarded by m.mu

	genMu sync.Mutex // serialises key generation

	mu      sync.Mutex
	tok     token  // nil while broken
	gen     uint64 // bumped on every (re)connect; keys found under an older gen are stale
	lastErr error  // why tok is nil
	lastTry time.Time
	closed  bool
	// pin reads the PIN again for a reconnect (a pin-source file may have
	// been changed with the token's PIN); refused is a PIN the token
	// refused, never tried again: HSMs lock a PIN after a few failures.
	pin     func() (string, error)
	refused string
}

// acquire returns the connection for u's token, connecting if none is open.
// Dialling happens under m.mu so that two keys on one token never open two
// contexts; a slow HSM therefore delays Open of keys on other tokens too,
// which only happens at start-up.
func (m *manager) acquire(u *URI) (*conn, error) {
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	key := connKey{u.ModulePath, u.Token}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conns[key]; c != nil {
		// The token is already logged in: a wrong PIN would otherwise
		// "work" through the shared session.
		c.mu.Lock()
		current := c.cfg.PIN
		c.mu.Unlock()
		if subtle.ConstantTimeCompare([]byte(pin), []byte(current)) != 1 {
			return nil, fmt.Errorf("%w: the token is already open with a different PIN", ErrBadPIN)
		}
		if u.MaxSessions != 0 && u.MaxSessions != c.cfg.MaxSessions {
			return nil, fmt.Errorf("token already open with max-sessions=%d, URI asks for %d: use one value for all keys on a token",
				c.cfg.MaxSessions, u.MaxSessions)
		}
		c.refs++
		return c, nil
	}
	cfg := tokenConfig{Module: u.ModulePath, Token: u.Token, PIN: pin, MaxSessions: u.Sessions()}
	tok, err := m.dial(cfg)
	if err != nil {
		return nil, err
	}
	c := &conn{m: m, key: key, cfg: cfg, refs: 1, tok: tok, gen: 1, pin: u.PIN}
	m.conns[key] = c
	return c, nil
}

// release drops one reference, closing the connection with the last.
func (m *manager) release(c *conn) {
	m.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last {
		delete(m.conns, c.key)
	}
	m.mu.Unlock()
	if !last {
		return
	}
	c.mu.Lock()
	tok := c.tok
	c.tok, c.closed = nil, true
	c.mu.Unlock()
	if tok != nil {
		_ = tok.Close()
	}
}

// current returns the live token, reconnecting if it is broken and the
// last attempt is at least m.reconnect ago.
func (c *conn) current() (token, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, ErrClosed
	}
	if c.tok != nil {
		return c.tok, c.gen, nil
	}
	now := c.m.now()
	if !c.lastTry.IsZero() && now.Sub(c.lastTry) < c.m.reconnect {
		return nil, 0, fmt.Errorf("%w: %w (next reconnect attempt in %s)",
			ErrUnavailable, c.lastErr, c.lastTry.Add(c.m.reconnect).Sub(now).Round(time.Millisecond))
	}
	c.lastTry = now
	cfg := c.cfg
	pin, err := c.pin()
	if err != nil {
		c.lastErr = err
		return nil, 0, fmt.Errorf("%w: reconnect: %w", ErrUnavailable, err)
	}
	cfg.PIN = pin
	if c.refused != "" && subtle.ConstantTimeCompare([]byte(cfg.PIN), []byte(c.refused)) == 1 {
		c.lastErr = fmt.Errorf("%w: the token refused this PIN, which is not tried again: "+
			"change the pin-source file (or restart with the right pin-value)", ErrBadPIN)
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, c.lastErr)
	}
	tok, err := c.m.dial(cfg)
	if err != nil {
		if errors.Is(err, ErrBadPIN) {
			c.refused = cfg.PIN
		}
		c.lastErr = err
		return nil, 0, fmt.Errorf("%w: reconnect failed: %w", ErrUnavailable, err)
	}
	c.tok, c.lastErr, c.cfg.PIN, c.refused = tok, nil, cfg.PIN, ""
	c.gen++
	return tok, c.gen, nil
}

// fail drops the connection of generation gen after a device fault, unless
// another goroutine already did (or already reconnected).
func (c *conn) fail(gen uint64, cause error) {
	c.mu.Lock()
	if c.tok == nil || c.gen != gen {
		c.mu.Unlock()
		return
	}
	tok := c.tok
	c.tok, c.lastErr = nil, cause
	c.mu.Unlock()
	// Outside the lock: crypto11's Close waits for sessions in use, whose
	// holders may be about to call fail or current themselves.
	_ = tok.Close()
}

func (m *manager) open(ctx context.Context, raw string) (*Signer, *URI, error) {
	u, err := parseFor(ctx, raw)
	if err != nil {
		return nil, u, err
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, u, errors.New("the URI names no key: give object=LABEL and/or id=%XX…")
	}
	c, err := m.acquire(u)
	if err != nil {
		return nil, u, err
	}
	s := &Signer{conn: c, uri: u.Redacted(), id: u.ID, label: []byte(u.Object)}
	key, gen, err := s.find()
	if err != nil {
		m.release(c)
		return nil, u, err
	}
	s.key, s.keyGen, s.pub = key, gen, key.Public()
	return s, u, nil
}

func (m *manager) generate(ctx context.Context, raw string, spec pki.KeySpec) (*Signer, *URI, error) {
	if err := spec.Validate(); err != nil {
		return nil, nil, err
	}
	u, err := parseFor(ctx, raw)
	if err != nil {
		return nil, u, err
	}
	if u.Object == "" {
		return nil, u, errors.New("a new key needs a label: give object=LABEL")
	}
	id := u.ID
	if len(id) == 0 {
		id = make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return nil, u, err
		}
	}
	c, err := m.acquire(u)
	if err != nil {
		return nil, u, err
	}
	key, gen, err := c.generate(spec, id, []byte(u.Object))
	if err != nil {
		m.release(c)
		return nil, u, err
	}
	return &Signer{conn: c, uri: u.Redacted(), id: id, label: []byte(u.Object),
		key: key, keyGen: gen, pub: key.Public()}, u, nil
}

// generate makes the key pair unless the label or the id is taken. It is
// serialised per token so that two generations in this process cannot both
// pass the check; other processes can still race, but the check is against
// operator mistakes (init run twice), not adversaries.
func (c *conn) generate(spec pki.KeySpec, id, label []byte) (crypto.Signer, uint64, error) {
	c.genMu.Lock()
	defer c.genMu.Unlock()
	tok, gen, err := c.current()
	if err != nil {
		return nil, 0, err
	}
	key, err := func() (crypto.Signer, error) {
		for _, q := range [][2][]byte{{nil, label}, {id, nil}} {
			found, err := tok.FindKeyPairs(q[0], q[1])
			if err != nil {
				return nil, err
			}
			if len(found) > 0 {
				return nil, ErrKeyExists
			}
		}
		return tok.GenerateKeyPair(spec, id, label)
	}()
	if err != nil {
		if isDeviceFault(err) {
			c.fail(gen, err)
		}
		return nil, 0, err
	}
	return key, gen, nil
}

func (m *manager) exists(ctx context.Context, raw string) (bool, *URI, error) {
	s, u, err := m.open(ctx, raw)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return false, u, nil
	case err != nil:
		return false, u, err
	}
	s.Close()
	return true, u, nil
}

func parseFor(ctx context.Context, raw string) (*URI, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ParseURI(raw)
}

// Signer is a key pair on a PKCS#11 token. It is safe for concurrent use.
// When the token fails it drops the connection and reconnects by itself
// (see Sign); Healthy reports the state for health checks.
type Signer struct {
	conn      *conn
	uri       string // redacted
	id, label []byte
	pub       crypto.PublicKey

	mu     sync.Mutex
	key    crypto.Signer
	keyGen uint64

	closeOnce sync.Once
	closed    atomic.Bool

	healthMu sync.Mutex
	probeAt  time.Time
	probeErr error
}

var _ HealthChecker = (*Signer)(nil)

// Public returns the public key found when the signer was opened. A key
// re-found after a reconnect must have the same one.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// URI returns the redacted URI of the key.
func (s *Signer) URI() string { return s.uri }

// Sign signs digest on the token. If the token fails (a device error, a
// session or object handle gone, a logout), Sign drops the connection,
// reconnects — at most once per DefaultReconnectInterval across all keys
// of the token — finds the key again and retries once. If that fails too,
// the error wraps ErrUnavailable or the device's error; the next Sign
// tries again.
func (s *Signer) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("pkcs11: sign with %s: %w", s.uri, ErrClosed)
	}
	sig, gen, err := s.trySign(r, digest, opts)
	if err == nil {
		return sig, nil
	}
	if !isDeviceFault(err) {
		return nil, fmt.Errorf("pkcs11: sign with %s: %w", s.uri, err)
	}
	s.conn.fail(gen, err)
	sig, gen, err2 := s.trySign(r, digest, opts)
	if err2 == nil {
		return sig, nil
	}
	if isDeviceFault(err2) {
		s.conn.fail(gen, err2)
	}
	return nil, fmt.Errorf("pkcs11: sign with %s: %w (retry: %w)", s.uri, err, err2)
}

func (s *Signer) trySign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, uint64, error) {
	key, gen, err := s.keyFor()
	if err != nil {
		return nil, gen, err
	}
	sig, err := key.Sign(r, digest, opts)
	return sig, gen, err
}

// keyFor returns the key on the current connection, finding it again if
// the connection was re-established since it was last found.
func (s *Signer) keyFor() (crypto.Signer, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, gen, err := s.conn.current()
	if err != nil {
		return nil, 0, err
	}
	if s.key != nil && s.keyGen == gen {
		return s.key, gen, nil
	}
	key, err := findIn(tok, s.id, s.label)
	if err != nil {
		return nil, gen, err
	}
	if !samePublic(key.Public(), s.pub) {
		// Someone replaced the key under the same label: signing with it
		// would issue certificates that do not chain to our CA cert.
		return nil, gen, fmt.Errorf("%w: the key found after reconnecting has a different public key", ErrKeyNotFound)
	}
	s.key, s.keyGen = key, gen
	return key, gen, nil
}

func (s *Signer) find() (crypto.Signer, uint64, error) {
	tok, gen, err := s.conn.current()
	if err != nil {
		return nil, 0, err
	}
	key, err := findIn(tok, s.id, s.label)
	return key, gen, err
}

func findIn(tok token, id, label []byte) (crypto.Signer, error) {
	keys, err := tok.FindKeyPairs(id, label)
	if err != nil {
		return nil, err
	}
	switch len(keys) {
	case 0:
		return nil, ErrKeyNotFound
	case 1:
		return keys[0], nil
	}
	return nil, fmt.Errorf("%w: %d key pairs match; add id=… to the URI", ErrAmbiguousKey, len(keys))
}

func samePublic(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Healthy reports whether the key can sign. While the connection is
// broken it tries to reconnect (subject to the same rate limit as Sign),
// so a health endpoint polled by a load balancer also drives recovery.
// While connected it probes the token by looking the key up, at most once
// per reconnect interval, because a failed token often shows only when
// asked.
func (s *Signer) Healthy() (bool, error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.conn.mu.Lock()
	broken := s.conn.tok == nil
	s.conn.mu.Unlock()
	if s.closed.Load() {
		return false, fmt.Errorf("pkcs11: %s: %w", s.uri, ErrClosed)
	}
	now := s.conn.m.now()
	if !broken && !s.probeAt.IsZero() && now.Sub(s.probeAt) < s.conn.m.reconnect {
		return s.probeErr == nil, s.probeErr
	}
	s.probeAt = now
	s.probeErr = s.probe()
	return s.probeErr == nil, s.probeErr
}

func (s *Signer) probe() error {
	_, gen, err := s.keyFor()
	if err != nil {
		return fmt.Errorf("pkcs11: %s: %w", s.uri, err)
	}
	s.conn.mu.Lock()
	tok := s.conn.tok
	s.conn.mu.Unlock()
	if tok == nil {
		return fmt.Errorf("pkcs11: %s: %w", s.uri, ErrUnavailable)
	}
	key, err := findIn(tok, s.id, s.label)
	if err != nil {
		if isDeviceFault(err) {
			s.conn.fail(gen, err)
		}
		return fmt.Errorf("pkcs11: %s: %w", s.uri, err)
	}
	if !samePublic(key.Public(), s.pub) {
		return fmt.Errorf("pkcs11: %s: %w: the key on the token has a different public key", s.uri, ErrKeyNotFound)
	}
	return nil
}

// Close releases the signer's share of the token connection; the last
// key of a token to close closes the connection. Sign fails afterwards.
func (s *Signer) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.conn.m.release(s.conn)
	})
	return nil
}
