package acme

import (
	"strconv"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
)

func TestKeyCache(t *testing.T) {
	jwkJSON := func() []byte {
		b, err := jws.MarshalJWK(&jose.JSONWebKey{Key: newKey(t).Public()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var c keyCache
	a, b := jwkJSON(), jwkJSON()

	k1, err := c.parse("acct", a)
	if err != nil {
		t.Fatal(err)
	}
	if k2, _ := c.parse("acct", a); k2 != k1 {
		t.Error("same stored key parsed twice")
	}
	// A key change (another KeyJWK for the same account) is never answered
	// from the cache.
	k3, err := c.parse("acct", b)
	if err != nil {
		t.Fatal(err)
	}
	if jws.KeysEqual(k3, k1) {
		t.Fatal("the cache returned the replaced key")
	}
	if want, _ := jws.ParseJWKJSON(b); !jws.KeysEqual(k3, want) {
		t.Fatal("the cache returned another key than the stored one")
	}
	// A stored key that does not parse is an error, and is not cached.
	if _, err := c.parse("bad", []byte(`{"kty":"oct","k":"AAAA"}`)); err == nil {
		t.Fatal("symmetric key accepted")
	}
	if _, ok := c.m["bad"]; ok {
		t.Fatal("a refused key was cached")
	}
	// The cache stays bounded.
	for i := range keyCacheSize + 10 {
		if _, err := c.parse(strconv.Itoa(i), a); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > keyCacheSize {
		t.Fatalf("%d entries, bound %d", len(c.m), keyCacheSize)
	}
}
