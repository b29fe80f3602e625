package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/pki"
)

// fakeHSM is the device behind fake tokens: its keys survive reconnects,
// and faults can be injected. epoch models the device's session state:
// a reset (kill) invalidates every session opened before it.
type fakeHSM struct {
	mu     sync.Mutex
	pin    string
	keys   []*fakeKey
	down   error // non-nil: the device is unreachable
	epoch  int
	dials  int
	closes int
}

type fakeKey struct {
	priv      *ecdsa.PrivateKey
	id, label []byte
}

func newFakeHSM(pin string) *fakeHSM { return &fakeHSM{pin: pin} }

func (h *fakeHSM) dial(cfg tokenConfig) (token, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dials++
	if h.down != nil {
		return nil, h.down
	}
	if cfg.PIN != h.pin {
		return nil, fmt.Errorf("%w (fake)", ErrBadPIN)
	}
	return &fakeToken{h: h, epoch: h.epoch}, nil
}

// kill resets every session, as an HSM reboot or C_CloseAllSessions does.
func (h *fakeHSM) kill() {
	h.mu.Lock()
	h.epoch++
	h.mu.Unlock()
}

func (h *fakeHSM) setDown(err error) {
	h.mu.Lock()
	h.down = err
	if err != nil {
		h.epoch++
	}
	h.mu.Unlock()
}

func (h *fakeHSM) counts() (dials, closes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dials, h.closes
}

func (h *fakeHSM) addKey(id, label string) *fakeKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	k := &fakeKey{priv: priv, id: []byte(id), label: []byte(label)}
	h.mu.Lock()
	h.keys = append(h.keys, k)
	h.mu.Unlock()
	return k
}

type fakeToken struct {
	h      *fakeHSM
	epoch  int
	closed bool // guarded by h.mu
}

var errSessionHandleInvalid = errors.New("CKR_SESSION_HANDLE_INVALID (fake)")

// alive reports a device error when this connection's sessions are gone.
// Callers hold h.mu.
func (t *fakeToken) alive() error {
	switch {
	case t.closed:
		return &deviceError{errors.New("context is closed (fake)")}
	case t.h.down != nil:
		return &deviceError{t.h.down}
	case t.epoch != t.h.epoch:
		return &deviceError{errSessionHandleInvalid}
	}
	return nil
}

func (t *fakeToken) FindKeyPairs(id, label []byte) ([]crypto.Signer, error) {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	if err := t.alive(); err != nil {
		return nil, err
	}
	var out []crypto.Signer
	for _, k := range t.h.keys {
		if (len(id) == 0 || bytes.Equal(id, k.id)) && (len(label) == 0 || bytes.Equal(label, k.label)) {
			out = append(out, &fakeHandle{t: t, k: k})
		}
	}
	return out, nil
}

func (t *fakeToken) GenerateKeyPair(spec pki.KeySpec, id, label []byte) (crypto.Signer, error) {
	if spec != pki.ECDSAP256 {
		return nil, fmt.Errorf("fake: %s not supported", spec)
	}
	k := t.h.addKey(string(id), string(label))
	return &fakeHandle{t: t, k: k}, nil
}

func (t *fakeToken) Close() error {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.h.closes++
	}
	return nil
}

type fakeHandle struct {
	t *fakeToken
	k *fakeKey
}

func (f *fakeHandle) Public() crypto.PublicKey { return f.k.priv.Public() }

// errBadDigest stands for a request error (wrong digest length): the token
// is fine, so no reconnect may follow.
var errBadDigest = errors.New("CKR_DATA_LEN_RANGE (fake)")

func (f *fakeHandle) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	f.t.h.mu.Lock()
	err := f.t.alive()
	f.t.h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(digest) != opts.HashFunc().Size() {
		return nil, errBadDigest
	}
	return f.k.priv.Sign(r, digest, opts)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestManager(h *fakeHSM) (*manager, *fakeClock) {
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newManager(h.dial)
	m.now = clk.Now
	return m, clk
}

const fakeURI = "pkcs11:token=ca;object=%s?module-path=/fake.so&pin-value=" + testPIN

func mustOpen(t *testing.T, m *manager, uri string) *Signer {
	t.Helper()
	s, _, err := m.open(context.Background(), uri)
	if err != nil {
		t.Fatalf("open %s: %v", uri, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustSign(t *testing.T, s crypto.Signer) {
	t.Helper()
	d := sha256.Sum256([]byte("to be signed"))
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatal("signature does not verify")
	}
}

func signErr(s crypto.Signer) error {
	d := sha256.Sum256([]byte("to be signed"))
	_, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	return err
}

func TestOpenFindsKeys(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "intermediate")
	h.addKey("\x02", "tls")
	h.addKey("\x03", "dup")
	h.addKey("\x04", "dup")
	m, _ := newTestManager(h)

	for _, uri := range []string{
		fmt.Sprintf(fakeURI, "intermediate"),
		"pkcs11:token=ca;id=%02?module-path=/fake.so&pin-value=" + testPIN,
		"pkcs11:token=ca;object=dup;id=%04?module-path=/fake.so&pin-value=" + testPIN,
	} {
		mustSign(t, mustOpen(t, m, uri))
	}
	for _, tt := range []struct {
		uri  string
		want error
	}{
		{fmt.Sprintf(fakeURI, "missing"), ErrKeyNotFound},
		{fmt.Sprintf(fakeURI, "dup"), ErrAmbiguousKey},
		{"pkcs11:token=ca;object=tls;id=%01?module-path=/fake.so&pin-value=" + testPIN, ErrKeyNotFound},
	} {
		_, _, err := m.open(context.Background(), tt.uri)
		if !errors.Is(err, tt.want) {
			t.Errorf("open %s: %v, want %v", tt.uri, err, tt.want)
		}
	}
	if _, _, err := m.open(context.Background(), "pkcs11:token=ca?module-path=/fake.so&pin-value=1"); err == nil ||
		!strings.Contains(err.Error(), "names no key") {
		t.Errorf("URI without key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := m.open(ctx, fmt.Sprintf(fakeURI, "tls")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// Keys on one token share one connection, which closes with the last key.
func TestConnectionsSharedAndReleased(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	h.addKey("\x02", "b")
	m, _ := newTestManager(h)
	a, _, err := m.open(context.Background(), fmt.Sprintf(fakeURI, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := m.open(context.Background(), fmt.Sprintf(fakeURI, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := h.counts(); d != 1 {
		t.Fatalf("%d dials for two keys on one token, want 1", d)
	}
	// A failed open must not leak its reference.
	if _, _, err := m.open(context.Background(), fmt.Sprintf(fakeURI, "c")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // idempotent
	if err := signErr(a); !errors.Is(err, ErrClosed) {
		t.Fatalf("sign after close: %v", err)
	}
	if ok, err := a.Healthy(); ok || !errors.Is(err, ErrClosed) {
		t.Fatalf("Healthy after close: %v, %v", ok, err)
	}
	mustSign(t, b)
	if _, c := h.counts(); c != 0 {
		t.Fatal("connection closed while a key still uses it")
	}
	b.Close()
	if _, c := h.counts(); c != 1 {
		t.Fatalf("connection not closed with its last key (%d closes)", c)
	}
	mustSign(t, mustOpen(t, m, fmt.Sprintf(fakeURI, "a")))
	if d, _ := h.counts(); d != 2 {
		t.Fatalf("%d dials, want a new connection after the last close", d)
	}
}

func TestSharedConnectionChecksPINAndSessions(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	m, _ := newTestManager(h)
	mustOpen(t, m, fmt.Sprintf(fakeURI, "a")+"&max-sessions=8")
	// The token is logged in already; a wrong PIN must still be refused.
	_, _, err := m.open(context.Background(), "pkcs11:token=ca;object=a?module-path=/fake.so&pin-value=wrong-pin&max-sessions=8")
	if !errors.Is(err, ErrBadPIN) {
		t.Fatalf("wrong PIN on an open token: %v", err)
	}
	_, _, err = m.open(context.Background(), fmt.Sprintf(fakeURI, "a")+"&max-sessions=4")
	if err == nil || !strings.Contains(err.Error(), "max-sessions=8") {
		t.Fatalf("conflicting max-sessions: %v", err)
	}
	mustSign(t, mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))) // no max-sessions: takes the open one
}

func TestGenerate(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x07", "taken")
	m, _ := newTestManager(h)
	ctx := context.Background()
	s, _, err := m.generate(ctx, fmt.Sprintf(fakeURI, "new"), pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSign(t, s)
	if len(s.id) != 16 {
		t.Fatalf("generated id has %d bytes, want 16 random ones", len(s.id))
	}
	// Found again by label, with the same public key.
	again := mustOpen(t, m, fmt.Sprintf(fakeURI, "new"))
	if !samePublic(again.Public(), s.Public()) {
		t.Fatal("re-opened key differs")
	}
	for _, uri := range []string{
		fmt.Sprintf(fakeURI, "new"),
		fmt.Sprintf(fakeURI, "taken"),
		"pkcs11:token=ca;object=other;id=%07?module-path=/fake.so&pin-value=" + testPIN,
	} {
		if _, _, err := m.generate(ctx, uri, pki.ECDSAP256); !errors.Is(err, ErrKeyExists) {
			t.Errorf("generate over %s: %v, want ErrKeyExists", uri, err)
		}
	}
	if _, _, err := m.generate(ctx, "pkcs11:token=ca;id=%09?module-path=/fake.so&pin-value=1", pki.ECDSAP256); err == nil {
		t.Error("generate without a label accepted")
	}
	if _, _, err := m.generate(ctx, fmt.Sprintf(fakeURI, "x"), pki.KeySpec("dsa-1024")); err == nil {
		t.Error("bad key spec accepted")
	}
	if ok, _, err := m.exists(ctx, fmt.Sprintf(fakeURI, "new")); !ok || err != nil {
		t.Errorf("exists(new) = %v, %v", ok, err)
	}
	if ok, _, err := m.exists(ctx, fmt.Sprintf(fakeURI, "nope")); ok || err != nil {
		t.Errorf("exists(nope) = %v, %v", ok, err)
	}
}

// A session reset (HSM reboot, C_CloseAllSessions) is invisible to the
// caller: the signer reconnects and retries once.
func TestSessionResetRecoversTransparently(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	m, _ := newTestManager(h)
	s := mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))
	mustSign(t, s)
	h.kill()
	mustSign(t, s)
	if d, c := h.counts(); d != 2 || c != 1 {
		t.Fatalf("dials=%d closes=%d, want the broken connection closed and one reconnect", d, c)
	}
	if ok, err := s.Healthy(); !ok {
		t.Fatalf("unhealthy after recovery: %v", err)
	}
}

func TestOutageAndRecovery(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	m, clk := newTestManager(h)
	s := mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))
	if ok, err := s.Healthy(); !ok {
		t.Fatal(err)
	}

	outage := errors.New("CKR_DEVICE_REMOVED (fake)")
	h.setDown(outage)
	err := signErr(s)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, outage) {
		t.Fatalf("sign during outage: %v", err)
	}
	if !strings.Contains(err.Error(), "token=ca;object=a") || strings.Contains(err.Error(), testPIN) {
		t.Fatalf("error must name the redacted URI: %v", err)
	}
	if ok, err := s.Healthy(); ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Healthy during outage = %v, %v", ok, err)
	}
	// Within the reconnect interval nothing touches the HSM.
	dials, _ := h.counts()
	clk.Advance(DefaultReconnectInterval / 2)
	for range 10 {
		if err := signErr(s); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("sign: %v", err)
		}
		s.Healthy()
	}
	if d, _ := h.counts(); d != dials {
		t.Fatalf("%d reconnect attempts inside the rate limit", d-dials)
	}
	// Once the interval has passed, one attempt (still down).
	clk.Advance(DefaultReconnectInterval)
	if err := signErr(s); !errors.Is(err, outage) {
		t.Fatalf("sign: %v", err)
	}
	if d, _ := h.counts(); d != dials+1 {
		t.Fatalf("%d reconnect attempts, want 1", d-dials)
	}

	h.setDown(nil)
	clk.Advance(DefaultReconnectInterval)
	mustSign(t, s)
	if ok, err := s.Healthy(); !ok {
		t.Fatalf("unhealthy after recovery: %v", err)
	}
}

// A health check alone (no signing traffic) notices an outage and drives
// the recovery.
func TestHealthyProbesAndRecovers(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	m, clk := newTestManager(h)
	s := mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))
	if ok, err := s.Healthy(); !ok {
		t.Fatal(err)
	}
	h.setDown(errors.New("CKR_TOKEN_NOT_PRESENT (fake)"))
	// The cached result holds within the interval, then the probe runs.
	if ok, _ := s.Healthy(); !ok {
		t.Fatal("probe ran inside the interval")
	}
	clk.Advance(DefaultReconnectInterval)
	if ok, err := s.Healthy(); ok || !strings.Contains(err.Error(), "TOKEN_NOT_PRESENT") {
		t.Fatalf("Healthy = %v, %v; want the outage", ok, err)
	}
	h.setDown(nil)
	clk.Advance(DefaultReconnectInterval)
	if ok, err := s.Healthy(); !ok {
		t.Fatalf("Healthy after the token came back: %v", err)
	}
	dials, _ := h.counts()
	mustSign(t, s)
	if d, _ := h.counts(); d != dials {
		t.Fatal("signing reconnected again after the health check had")
	}
}

// After an outage the key is found again by label; a different key under
// the same label must not be used.
func TestReplacedKeyRefused(t *testing.T) {
	h := newFakeHSM(testPIN)
	orig := h.addKey("\x01", "a")
	m, clk := newTestManager(h)
	s := mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))
	h.mu.Lock()
	h.keys = nil
	h.mu.Unlock()
	h.addKey("\x01", "a")
	h.kill()
	if err := signErr(s); !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), "different public key") {
		t.Fatalf("sign with replaced key: %v", err)
	}
	if ok, _ := s.Healthy(); ok {
		t.Fatal("healthy with a replaced key")
	}
	h.mu.Lock()
	h.keys = []*fakeKey{orig}
	h.mu.Unlock()
	clk.Advance(DefaultReconnectInterval)
	mustSign(t, s)
}

// A request error is the caller's, not the token's: no reconnect.
func TestRequestErrorDoesNotReconnect(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	m, _ := newTestManager(h)
	s := mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))
	_, err := s.Sign(rand.Reader, []byte("short"), crypto.SHA256)
	if !errors.Is(err, errBadDigest) {
		t.Fatalf("sign: %v", err)
	}
	if d, c := h.counts(); d != 1 || c != 0 {
		t.Fatalf("dials=%d closes=%d after a request error", d, c)
	}
	if ok, err := s.Healthy(); !ok {
		t.Fatal(err)
	}
}

// Many goroutines hitting a session reset together cause one reconnect,
// not one each, and every signature that is returned is valid.
func TestConcurrentSignDuringReset(t *testing.T) {
	h := newFakeHSM(testPIN)
	h.addKey("\x01", "a")
	m, _ := newTestManager(h)
	s := mustOpen(t, m, fmt.Sprintf(fakeURI, "a"))
	pub := s.Public().(*ecdsa.PublicKey)
	var wg sync.WaitGroup
	errs := make(chan error, 32*20)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if g == 0 && i == 10 {
					h.kill()
				}
				d := sha256.Sum256(fmt.Appendf(nil, "%d/%d", g, i))
				sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
				if err != nil {
					errs <- err
					continue
				}
				if !ecdsa.VerifyASN1(pub, d[:], sig) {
					errs <- errors.New("bad signature")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d, _ := h.counts(); d != 2 {
		t.Fatalf("%d dials, want 1 + exactly one reconnect", d)
	}
}

func TestOpenErrorsNameURIWithoutPIN(t *testing.T) {
	h := newFakeHSM("another-pin")
	m, _ := newTestManager(h)
	_, u, err := m.open(context.Background(), fmt.Sprintf(fakeURI, "a"))
	if !errors.Is(err, ErrBadPIN) {
		t.Fatalf("open: %v", err)
	}
	// The exported wrappers add the redacted URI.
	wrapped := fmt.Errorf("pkcs11: open %s: %w", redactedOf(u, ""), err)
	if !strings.Contains(wrapped.Error(), "pin-value=REDACTED") || strings.Contains(wrapped.Error(), testPIN) {
		t.Fatalf("error: %v", wrapped)
	}
}

// After a device fault the token is logged in again with the PIN the
// pin-source file holds now (an operator changed the token's PIN and the
// file together); a PIN the token refuses is not tried again until the
// file changes: HSMs lock a PIN after a few failures.
func TestReconnectRereadsThePINAndNeverRetriesARefusedOne(t *testing.T) {
	h := newFakeHSM("1111")
	h.addKey("\x01", "ca-key")
	m, clk := newTestManager(h)
	pinFile := filepath.Join(t.TempDir(), "pin")
	writePIN := func(pin string) {
		t.Helper()
		if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePIN("1111")
	s := mustOpen(t, m, "pkcs11:token=ca;object=ca-key?module-path=/fake.so&pin-source=file:"+pinFile)
	mustSign(t, s)

	// The token's PIN changes but the file does not: one refused login,
	// then none, however long the CA keeps trying.
	h.mu.Lock()
	h.pin = "2222"
	h.mu.Unlock()
	h.kill()
	d0, _ := h.counts()
	for range 20 {
		clk.Advance(time.Second)
		if err := signErr(s); err == nil {
			t.Fatal("signed with a refused PIN")
		}
		s.Healthy()
	}
	if d1, _ := h.counts(); d1-d0 != 1 {
		t.Fatalf("%d logins with the refused PIN, want 1", d1-d0)
	}
	if ok, err := s.Healthy(); ok || !errors.Is(err, ErrBadPIN) {
		t.Fatalf("Healthy: %v %v, want unhealthy with ErrBadPIN", ok, err)
	}
	// The file is brought up to date: the next attempt logs in with it.
	writePIN("2222")
	clk.Advance(time.Second)
	mustSign(t, s)
}
