package raapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

// ParseToken reads what an operator pastes on the RA host: it must refuse
// anything but a well-formed token, never panic, and accept what it makes.
func FuzzParseToken(f *testing.F) {
	good := Token{CAURL: "https://ca.internal:8443", RootSHA256: strings.Repeat("ab", 32), ID: "t1", Secret: "c2VjcmV0"}
	f.Add(good.String())
	f.Add("pcra1.")
	f.Add("pcra1.e30")
	f.Add("nope")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		// The scheme is case-insensitive (RFC 3986 §3.1): "HTTPS://ca" is
		// an https URL, and Go's HTTP client treats it as one.
		u, err := url.Parse(tok.CAURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || tok.ID == "" || tok.Secret == "" || len(tok.RootSHA256) != 64 {
			t.Fatalf("accepted a bad token: %+v", tok)
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip: %+v %v", again, err)
		}
	})
}

func TestParseTokenRefusals(t *testing.T) {
	good := Token{CAURL: "https://ca.internal:8443", RootSHA256: strings.Repeat("ab", 32), ID: "t1", Secret: "s"}
	if _, err := ParseToken(good.String()); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]Token{
		"http URL":    {CAURL: "http://ca.internal", RootSHA256: good.RootSHA256, ID: "t1", Secret: "s"},
		"short print": {CAURL: good.CAURL, RootSHA256: "abcd", ID: "t1", Secret: "s"},
		"no secret":   {CAURL: good.CAURL, RootSHA256: good.RootSHA256, ID: "t1"},
		"no id":       {CAURL: good.CAURL, RootSHA256: good.RootSHA256, Secret: "s"},
	} {
		if _, err := ParseToken(tok.String()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, s := range []string{"", "pcra1", "pcra1.!!!", "pcra1." + "e30", "xx1.e30"} {
		if _, err := ParseToken(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}

// The RA API's request bodies are strict JSON: unknown fields, trailing
// garbage of the wrong type and oversized bodies are malformed, never a
// panic.
func FuzzDecodeSignRequest(f *testing.F) {
	f.Add([]byte(`{"csr":"","order_id":"o","account_id":"a","provisioner":"acme","identifiers":[{"type":"dns","value":"a.internal"}]}`))
	f.Add([]byte(`{"nope":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/ra/v1/sign", bytes.NewReader(body))
		var req SignRequest
		err := decode(r, &req)
		if err != nil {
			if !core.IsKind(err, core.KindMalformed) {
				t.Fatalf("decode error of kind %v", err)
			}
			return
		}
		_ = validated(req.Evidence, core.Identifier{Type: core.DNS, Value: "a.internal"})
	})
}

func TestDecodeRefusesUnknownFields(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/ra/v1/sign", strings.NewReader(`{"order_id":"o","extra":true}`))
	var req SignRequest
	if err := decode(r, &req); !core.IsKind(err, core.KindMalformed) || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("unknown field: %v", err)
	}
	ev := []Evidence{{Identifier: core.Identifier{Type: core.DNS, Value: "a.internal"}, Challenge: "http-01", Validated: time.Now()}}
	if !validated(ev, core.Identifier{Type: core.DNS, Value: "a.internal"}) || validated(ev, core.Identifier{Type: core.DNS, Value: "b.internal"}) {
		t.Fatal("evidence matching")
	}
	ev[0].Challenge = "http-02"
	if validated(ev, core.Identifier{Type: core.DNS, Value: "a.internal"}) {
		t.Fatal("evidence with an unknown challenge type accepted")
	}
}
