package acme

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/policyca/policyca/acme/nonce"
	"github.com/policyca/policyca/core"
)

// handlerTransport serves requests in-process, so benchmarks measure the
// server rather than the loopback network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// newBenchEnv is an in-process server with the real SQLite store.
func newBenchEnv(b *testing.B) (*testEnv, *testClient) {
	b.Helper()
	st := openTestStore(b)
	env := &testEnv{store: st, authority: newFakeAuthority(b, st), validator: &fakeValidator{}, now: &testClock{}, base: "https://acme.bench"}
	nonces, err := nonce.NewMemory(1 << 16)
	if err != nil {
		b.Fatal(err)
	}
	env.srv, err = NewServer(Options{
		BaseURL:      env.base,
		Provisioners: []Provisioner{{Name: testProv, Validator: env.validator}},
		Store:        st, Authority: env.authority, Nonces: nonces,
		Logger: discardLogger(), Now: env.now.Now,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.srv.Close)
	c := &testClient{t: b, hc: &http.Client{Transport: handlerTransport{env.srv.Handler()}}, dir: env.url(""), key: newKey(b)}
	c.register()
	return env, c
}

// BenchmarkJWSVerifyPath measures the whole chain (content type, size
// limit, parse, nonce, url, account lookup, signature) and the handler for
// one POST-as-GET of an account. Signing is client work and is excluded.
func BenchmarkJWSVerifyPath(b *testing.B) {
	env, c := newBenchEnv(b)
	h := env.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		body := c.sign(c.kid, nil, signOpts{})
		req := httptest.NewRequest(http.MethodPost, c.kid, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/jose+json")
		w := httptest.NewRecorder()
		b.StartTimer()
		h.ServeHTTP(w, req)
		b.StopTimer()
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		c.last = w.Header().Get("Replay-Nonce")
		b.StartTimer()
	}
}

// BenchmarkIssuance measures a whole issuance in-process: newOrder,
// challenge, polling until ready, finalize and certificate download, with
// the fake validator and authority.
func BenchmarkIssuance(b *testing.B) {
	_, c := newBenchEnv(b)
	csr := csrFor(b, "dns:bench.internal")
	b.ReportAllocs()
	for b.Loop() {
		o, u := c.newOrder("dns:bench.internal")
		o = c.solve(o, u, core.ChallengeHTTP01)
		r := c.post(o.Finalize, map[string]string{"csr": csr})
		r.decode(b, &o)
		if o.Status != core.StatusValid {
			b.Fatalf("order %+v", o)
		}
		if der := c.certDER(o); len(der) == 0 {
			b.Fatal("empty certificate")
		}
	}
}
