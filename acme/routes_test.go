package acme

import (
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
)

// TestRoutesMatchOneTemplate pins which route each request path reaches:
// the routes are ordered by how often clients use them, which is safe
// only while no path matches two of them.
func TestRoutesMatchOneTemplate(t *testing.T) {
	env := newEnv(t)
	r, ok := env.srv.routes().(*mux.Router)
	if !ok {
		t.Fatalf("routes() is a %T, want *mux.Router", env.srv.routes())
	}
	for path, want := range map[string]string{
		"/acme/p/directory":          "/acme/{prov}/directory",
		"/acme/p/new-nonce":          "/acme/{prov}/new-nonce",
		"/acme/p/issuer":             "/acme/{prov}/issuer",
		"/acme/p/new-account":        "/acme/{prov}/new-account",
		"/acme/p/new-order":          "/acme/{prov}/new-order",
		"/acme/p/revoke-cert":        "/acme/{prov}/revoke-cert",
		"/acme/p/key-change":         "/acme/{prov}/key-change",
		"/acme/p/account/a1":         "/acme/{prov}/account/{id}",
		"/acme/p/account/a1/orders":  "/acme/{prov}/account/{id}/orders",
		"/acme/p/order/o1":           "/acme/{prov}/order/{id}",
		"/acme/p/order/o1/finalize":  "/acme/{prov}/order/{id}/finalize",
		"/acme/p/authz/z1":           "/acme/{prov}/authz/{id}",
		"/acme/p/chall/z1/c1":        "/acme/{prov}/chall/{authz}/{chall}",
		"/acme/p/cert/c1":            "/acme/{prov}/cert/{id}",
		"/acme/p/order/o1/finalize/": "",
		"/acme/p/authz/z1/extra":     "",
		"/acme/p/chall/z1":           "",
		"/acme/p/order":              "",
	} {
		var m mux.RouteMatch
		matched := r.Match(httptest.NewRequest("POST", path, nil), &m) && m.MatchErr == nil
		got := ""
		if matched && m.Route != nil {
			if got, _ = m.Route.GetPathTemplate(); got == "" {
				t.Errorf("%s: matched a route without a template", path)
			}
		}
		if got != want {
			t.Errorf("%s: route %q, want %q", path, got, want)
		}
	}
}
