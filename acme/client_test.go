package acme

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
)

// testClient is a minimal ACME client for driving the server: it signs with
// go-jose, keeps the last Replay-Nonce, and returns raw responses so tests
// can check every header.
type testClient struct {
	t    testing.TB
	hc   *http.Client
	dir  string // directory URL prefix: base + "/acme/" + prov
	key  crypto.Signer
	kid  string
	last string // last nonce seen
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r *response) problem(t testing.TB) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want problem; status %d body %s", ct, r.status, r.body)
	}
	var p Problem
	r.decode(t, &p)
	return p
}

// wantProblem checks a problem response's status and type.
func (r *response) wantProblem(t testing.TB, status int, typ string) Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	p := r.problem(t)
	if p.Type != problemPrefix+typ || p.Status != status {
		t.Fatalf("problem = %+v, want type %s status %d", p, typ, status)
	}
	return p
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (e *testEnv) newClient(t testing.TB) *testClient {
	t.Helper()
	return &testClient{t: t, hc: e.httpClient(), dir: e.url(""), key: newKey(t)}
}

func (c *testClient) do(req *http.Request) *response {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if n := resp.Header.Get("Replay-Nonce"); n != "" {
		c.last = n
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

func (c *testClient) get(url string) *response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

// nonce returns an unused nonce: the last one seen, or a new one.
func (c *testClient) nonce() string {
	c.t.Helper()
	if c.last == "" {
		req, err := http.NewRequest(http.MethodHead, c.dir+"/new-nonce", nil)
		if err != nil {
			c.t.Fatal(err)
		}
		c.do(req)
	}
	n := c.last
	c.last = ""
	return n
}

// signOpts vary what sign puts in the protected header, for negative tests.
type signOpts struct {
	key      crypto.Signer
	nonce    string
	noNonce  bool
	url      string
	kid      string
	embedJWK bool // also embed the JWK when a kid is set
	forceJWK bool // sign with jwk even though the client has a kid
}

// sign builds a flattened JWS over payload (nil means POST-as-GET).
func (c *testClient) sign(url string, payload []byte, o signOpts) []byte {
	c.t.Helper()
	key := o.key
	if key == nil {
		key = c.key
	}
	extra := map[jose.HeaderKey]any{"url": url}
	if o.url != "" {
		extra["url"] = o.url
	}
	if !o.noNonce {
		n := o.nonce
		if n == "" {
			n = c.nonce()
		}
		extra["nonce"] = n
	}
	kid := c.kid
	if o.kid != "" {
		kid = o.kid
	}
	useJWK := kid == "" || o.forceJWK
	if !useJWK {
		extra["kid"] = kid
	}
	opts := &jose.SignerOptions{EmbedJWK: useJWK || o.embedJWK, ExtraHeaders: extra}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	if payload == nil {
		payload = []byte{}
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

func (c *testClient) postRaw(url string, body []byte, contentType string) *response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return c.do(req)
}

// post signs payload (JSON-encoded unless it is []byte) and posts it.
func (c *testClient) post(url string, payload any) *response {
	c.t.Helper()
	return c.postWith(url, payload, signOpts{})
}

func (c *testClient) postWith(url string, payload any, o signOpts) *response {
	c.t.Helper()
	var raw []byte
	switch p := payload.(type) {
	case nil:
	case []byte:
		raw = p
	default:
		var err error
		if raw, err = json.Marshal(p); err != nil {
			c.t.Fatal(err)
		}
	}
	return c.postRaw(url, c.sign(url, raw, o), "application/jose+json")
}

// register creates the client's account and remembers its URL as kid.
func (c *testClient) register(contact ...string) accountJSON {
	c.t.Helper()
	r := c.post(c.dir+"/new-account", map[string]any{"contact": contact, "termsOfServiceAgreed": true})
	if r.status != http.StatusCreated {
		c.t.Fatalf("newAccount: %d %s", r.status, r.body)
	}
	c.kid = r.header.Get("Location")
	var a accountJSON
	r.decode(c.t, &a)
	return a
}

// newOrder places an order for identifiers written "dns:x" or "ip:y".
func (c *testClient) newOrder(ids ...string) (orderJSON, string) {
	c.t.Helper()
	r := c.post(c.dir+"/new-order", map[string]any{"identifiers": parseIDs(ids)})
	if r.status != http.StatusCreated {
		c.t.Fatalf("newOrder: %d %s", r.status, r.body)
	}
	var o orderJSON
	r.decode(c.t, &o)
	return o, r.header.Get("Location")
}

func parseIDs(ids []string) []core.Identifier {
	out := make([]core.Identifier, 0, len(ids))
	for _, s := range ids {
		typ, v, _ := strings.Cut(s, ":")
		out = append(out, core.Identifier{Type: core.IdentifierType(typ), Value: v})
	}
	return out
}

func (c *testClient) authz(url string) authzJSON {
	c.t.Helper()
	r := c.post(url, nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("authz: %d %s", r.status, r.body)
	}
	var a authzJSON
	r.decode(c.t, &a)
	return a
}

func (c *testClient) order(url string) orderJSON {
	c.t.Helper()
	r := c.post(url, nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("order: %d %s", r.status, r.body)
	}
	var o orderJSON
	r.decode(c.t, &o)
	return o
}

// waitOrder polls until the order leaves the given status. Validation is
// asynchronous; the loop is bounded so a stuck order fails the test.
func (c *testClient) waitOrder(url string, from core.Status) orderJSON {
	c.t.Helper()
	delay := 100 * time.Microsecond
	for range 1000 {
		o := c.order(url)
		if o.Status != from {
			return o
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
	c.t.Fatalf("order %s stayed %s", url, from)
	return orderJSON{}
}

// solve triggers the challenge of type typ in every authorization of the
// order (or the first one offered when typ is "") and waits for the order
// to leave pending.
func (c *testClient) solve(o orderJSON, orderURL, typ string) orderJSON {
	c.t.Helper()
	for _, au := range o.Authorizations {
		a := c.authz(au)
		ch := a.Challenges[0]
		for _, x := range a.Challenges {
			if x.Type == typ {
				ch = x
			}
		}
		if r := c.post(ch.URL, struct{}{}); r.status != http.StatusOK {
			c.t.Fatalf("challenge: %d %s", r.status, r.body)
		}
	}
	return c.waitOrder(orderURL, core.StatusPending)
}

// csrFor makes a CSR (base64url DER) for the identifiers.
func csrFor(t testing.TB, ids ...string) string {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, id := range parseIDs(ids) {
		if id.Type == core.IP {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(id.Value))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, id.Value)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(der)
}

// issue runs the whole flow and returns the valid order and its URL.
func (c *testClient) issue(ids ...string) (orderJSON, string) {
	c.t.Helper()
	o, u := c.newOrder(ids...)
	if o = c.solve(o, u, core.ChallengeDNS01); o.Status != core.StatusReady {
		c.t.Fatalf("order is %s, want ready", o.Status)
	}
	r := c.post(o.Finalize, map[string]string{"csr": csrFor(c.t, ids...)})
	if r.status != http.StatusOK {
		c.t.Fatalf("finalize: %d %s", r.status, r.body)
	}
	r.decode(c.t, &o)
	if o.Status != core.StatusValid || o.Certificate == "" {
		c.t.Fatalf("finalized order: %+v", o)
	}
	return o, u
}

// certDER downloads the order's certificate and returns the leaf's DER.
func (c *testClient) certDER(o orderJSON) []byte {
	c.t.Helper()
	r := c.post(o.Certificate, nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("certificate: %d %s", r.status, r.body)
	}
	return pemLeaf(c.t, r.body)
}
