package acme

import (
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/acme/jws"
)

// keyCacheSize bounds the parsed account keys kept in memory. An entry is
// a few hundred bytes; past the bound an arbitrary entry makes room, which
// only costs the next request of that account one parse.
const keyCacheSize = 16384

// keyCache keeps account keys parsed, by account ID. Every request signed
// with a kid still reads the account from the store (its status and key
// may have changed, on this node or another); what is cached is only the
// result of parsing and checking its KeyJWK, and it is used only when the
// stored KeyJWK is byte for byte the one that was parsed. A key change or
// a store that re-encodes the key therefore simply misses, never serves a
// stale key.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]cachedKey
}

type cachedKey struct {
	jwk string
	key *jose.JSONWebKey
}

// parse returns the parsed key for the account's stored KeyJWK. The
// returned key is shared: callers must not modify it.
func (c *keyCache) parse(accountID string, keyJWK []byte) (*jose.JSONWebKey, error) {
	c.mu.RLock()
	e, ok := c.m[accountID]
	c.mu.RUnlock()
	if ok && e.jwk == string(keyJWK) {
		return e.key, nil
	}
	key, err := jws.ParseJWKJSON(keyJWK)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]cachedKey)
	}
	if _, ok := c.m[accountID]; !ok && len(c.m) >= keyCacheSize {
		for id := range c.m {
			delete(c.m, id)
			break
		}
	}
	c.m[accountID] = cachedKey{jwk: string(keyJWK), key: key}
	c.mu.Unlock()
	return key, nil
}
