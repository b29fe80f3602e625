package core

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// IDLen is the length of the IDs NewID returns.
const IDLen = 12 + 22

// NewID returns a new object ID (account, order, authorization,
// certificate, EAB key, RA token): 12 lowercase hex digits of the Unix
// time in milliseconds, then 128 random bits in unpadded base64url, 34
// URL-safe characters in all.
//
// The random part keeps IDs unguessable, as before; the time prefix makes
// IDs created close together sort together, so that inserting them, and
// the rows that refer to them (an account's orders, an order's
// authorizations and certificates), touches the right edge of each index
// instead of a random page of it: fewer pages written per commit, and a
// cost per issuance that grows less with the database (docs/decisions.md,
// "Object IDs"). The time of creation shows in the ID; it is no secret
// from the account that sees the object's URL.
func NewID() string {
	return newIDAt(time.Now())
}

func newIDAt(t time.Time) string {
	var b [IDLen]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	hex.Encode(b[:12], ms[2:])
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("core: crypto/rand failed: " + err.Error()) // cannot happen on supported platforms
	}
	base64.RawURLEncoding.Encode(b[12:], r[:])
	return string(b[:])
}
