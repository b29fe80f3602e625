package nonce

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/policyca/policyca/core"
)

// MaxOutstanding bounds maxOutstanding; the redemption bitmap costs one bit
// per outstanding nonce (128 MiB at this bound).
const MaxOutstanding = 1 << 30

// MaxPrefixLen bounds the length of a node prefix.
const MaxPrefixLen = 16

// encodedLen is the length of the encrypted part of a nonce: one AES block
// in unpadded base64url.
var encodedLen = base64.RawURLEncoding.EncodedLen(aes.BlockSize)

// Memory is an in-process nonce source. Its zero value is not usable: make
// one with NewMemory or NewMemoryWithPrefix. It is safe for concurrent use.
//
// A nonce is prefix || base64url(AES(counter || tag)): counter is a 64-bit
// sequence number, tag a random 64-bit value fixed for the life of the
// Memory. AES is a pseudo-random permutation, so without the key a nonce
// cannot be predicted from earlier ones, and a value that does not decrypt
// to the tag is a forgery (the odds of guessing are 2^-64). Issuing a nonce
// costs one AES block and one string allocation, and takes no lock.
type Memory struct {
	prefix string
	block  cipher.Block
	tag    uint64
	window uint64 // number of counters tracked; a multiple of 64

	issued atomic.Uint64 // highest counter issued; the first nonce is 1

	mu sync.Mutex
	// used[c % window] says whether counter c was redeemed, for the counters
	// in (top-window, top]. Bits of counters above top are cleared when top
	// advances, so the bitmap never needs touching when issuing.
	used []uint64
	top  uint64
}

// NewMemory returns a Memory that accepts each of the last maxOutstanding
// issued nonces once; older ones are refused as too old.
func NewMemory(maxOutstanding int) (*Memory, error) {
	return NewMemoryWithPrefix("", maxOutstanding)
}

// NewMemoryWithPrefix is NewMemory for one of several nodes: every nonce
// starts with prefix, which names the node that can redeem it (see the
// package documentation). The prefix is up to MaxPrefixLen base64url
// characters, a multiple of 4 of them, so that the whole nonce is still a
// valid base64url string as RFC 8555 §6.5.1 requires.
func NewMemoryWithPrefix(prefix string, maxOutstanding int) (*Memory, error) {
	if maxOutstanding <= 0 || maxOutstanding > MaxOutstanding {
		return nil, fmt.Errorf("nonce: maxOutstanding must be between 1 and %d, not %d", MaxOutstanding, maxOutstanding)
	}
	if len(prefix) > MaxPrefixLen || len(prefix)%4 != 0 || !isBase64URL(prefix) {
		return nil, fmt.Errorf("nonce: prefix %q must be at most %d base64url characters, a multiple of 4", prefix, MaxPrefixLen)
	}
	var key [16]byte
	var tag [8]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("nonce: generating key: %w", err)
	}
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, fmt.Errorf("nonce: generating tag: %w", err)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	words := (uint64(maxOutstanding) + 63) / 64
	return &Memory{
		prefix: prefix,
		block:  block,
		tag:    binary.BigEndian.Uint64(tag[:]),
		window: words * 64,
		used:   make([]uint64, words),
	}, nil
}

// Prefix returns the node prefix that every nonce of m starts with.
func (m *Memory) Prefix() string { return m.prefix }

// Nonce issues a fresh nonce.
func (m *Memory) Nonce(ctx context.Context) (string, error) {
	c := m.issued.Add(1)
	var plain, sealed [aes.BlockSize]byte
	binary.BigEndian.PutUint64(plain[:8], c)
	binary.BigEndian.PutUint64(plain[8:], m.tag)
	m.block.Encrypt(sealed[:], plain[:])
	var out [MaxPrefixLen + 24]byte
	n := copy(out[:], m.prefix)
	base64.RawURLEncoding.Encode(out[n:], sealed[:])
	return string(out[:n+encodedLen]), nil
}

// Redeem accepts a nonce issued by m once. A nonce that m did not issue,
// that was already redeemed, or that is older than the window is refused
// with a *core.Error of kind badNonce.
func (m *Memory) Redeem(ctx context.Context, nonce string) error {
	c, err := m.open(nonce)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Reading issued under the lock after decrypting is safe: a nonce the
	// client holds was issued (its Add happened) before it was sent out.
	issued := m.issued.Load()
	if c == 0 || c > issued {
		// Only possible with the key; refuse it like any other forgery.
		return badNonce("the nonce was not issued by this server")
	}
	m.advance(issued)
	if m.top-c >= m.window {
		return badNonce("the nonce is too old")
	}
	word, bit := (c%m.window)/64, uint64(1)<<(c%64)
	if m.used[word]&bit != 0 {
		return badNonce("the nonce has already been used")
	}
	m.used[word] |= bit
	return nil
}

// advance moves the top of the window to issued, clearing the bits of the
// counters that enter it. Called with mu held.
func (m *Memory) advance(issued uint64) {
	if issued <= m.top {
		return
	}
	if issued-m.top >= m.window {
		clear(m.used)
		m.top = issued
		return
	}
	for c := m.top + 1; c <= issued; c++ {
		m.used[(c%m.window)/64] &^= 1 << (c % 64)
	}
	m.top = issued
}

// open checks the form and authenticity of a nonce and returns its counter.
func (m *Memory) open(nonce string) (uint64, error) {
	rest, ok := strings.CutPrefix(nonce, m.prefix)
	if !ok {
		return 0, badNonce("the nonce was not issued by this server")
	}
	if len(rest) != encodedLen {
		return 0, badNonce("the nonce is not one this server issues")
	}
	var sealed, plain [aes.BlockSize]byte
	// Strict decoding keeps one nonce from having two spellings that would
	// both decrypt to the same counter.
	if n, err := base64.RawURLEncoding.Strict().Decode(sealed[:], []byte(rest)); err != nil || n != aes.BlockSize {
		return 0, badNonce("the nonce is not valid base64url")
	}
	m.block.Decrypt(plain[:], sealed[:])
	var want [8]byte
	binary.BigEndian.PutUint64(want[:], m.tag)
	if subtle.ConstantTimeCompare(plain[8:], want[:]) != 1 {
		return 0, badNonce("the nonce was not issued by this server")
	}
	return binary.BigEndian.Uint64(plain[:8]), nil
}

func badNonce(detail string) *core.Error {
	return core.Errorf(core.KindBadNonce, "%s", detail)
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
