package pkcs11

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPIN = "Pin-Secret-4711"

func TestParseURIGood(t *testing.T) {
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(testPIN+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in       string
		want     URI
		pin      string
		redacted string
	}{{
		in:       "pkcs11:token=policyca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:" + pinFile,
		want:     URI{Token: "policyca", Object: "intermediate", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: pinFile},
		pin:      testPIN,
		redacted: "pkcs11:token=policyca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:" + pinFile,
	}, {
		// Percent-encoding in labels and ids, type=private, max-sessions,
		// pin-value, a file:/// pin-source form, attributes in any order.
		in:       "PKCS11:id=%01%a2%FF;type=private;object=my%20key;token=CA%3btoken?max-sessions=4&pin-value=" + testPIN + "&module-path=/opt/hsm/lib%20x.so",
		want:     URI{Token: "CA;token", Object: "my key", ID: []byte{1, 0xa2, 0xff}, ModulePath: "/opt/hsm/lib x.so", MaxSessions: 4, pinValue: testPIN},
		pin:      testPIN,
		redacted: "pkcs11:token=CA%3Btoken;object=my%20key;id=%01%a2%ff?module-path=/opt/hsm/lib%20x.so&pin-value=REDACTED&max-sessions=4",
	}, {
		in:       "pkcs11:token=t;id=%00?module-path=/m.so&pin-source=file://" + pinFile,
		want:     URI{Token: "t", ID: []byte{0}, ModulePath: "/m.so", PINSource: pinFile},
		pin:      testPIN,
		redacted: "pkcs11:token=t;id=%00?module-path=/m.so&pin-source=file:" + pinFile,
	}, {
		// '=' and ':' may appear unencoded in values (RFC 7512 res-avail).
		in:       "pkcs11:token=a=b:c;object=x?module-path=/m.so&pin-value=p%26q=r",
		want:     URI{Token: "a=b:c", Object: "x", ModulePath: "/m.so", pinValue: "p&q=r"},
		pin:      "p&q=r",
		redacted: "pkcs11:token=a=b:c;object=x?module-path=/m.so&pin-value=REDACTED",
	}}
	for _, tt := range tests {
		t.Run(tt.want.Token, func(t *testing.T) {
			u, err := ParseURI(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if u.Token != tt.want.Token || u.Object != tt.want.Object || !bytes.Equal(u.ID, tt.want.ID) ||
				u.ModulePath != tt.want.ModulePath || u.PINSource != tt.want.PINSource ||
				u.MaxSessions != tt.want.MaxSessions || u.pinValue != tt.want.pinValue {
				t.Fatalf("got %+v, want %+v", *u, tt.want)
			}
			pin, err := u.PIN()
			if err != nil || pin != tt.pin {
				t.Fatalf("PIN() = %q, %v; want %q", pin, err, tt.pin)
			}
			if got := u.Redacted(); got != tt.redacted {
				t.Fatalf("Redacted() = %q\nwant         %q", got, tt.redacted)
			}
			// The canonical form parses back to the same URI (but with
			// the PIN gone when it was a pin-value).
			back, err := ParseURI(strings.Replace(u.Redacted(), "REDACTED", "x", 1))
			if err != nil || back.Redacted() != u.Redacted() {
				t.Fatalf("round trip: %v, %v", back, err)
			}
			for _, s := range []string{u.String(), fmt.Sprintf("%v|%+v|%s|%#v", u, u, u, u)} {
				if strings.Contains(s, tt.pin) {
					t.Fatalf("PIN printed: %s", s)
				}
			}
		})
	}
}

func TestURISessions(t *testing.T) {
	u, err := ParseURI("pkcs11:token=t;object=k?module-path=/m.so&pin-value=1234")
	if err != nil {
		t.Fatal(err)
	}
	if u.Sessions() != DefaultMaxSessions {
		t.Fatalf("default sessions %d", u.Sessions())
	}
	u.MaxSessions = 3
	if u.Sessions() != 3 {
		t.Fatalf("sessions %d", u.Sessions())
	}
}

func TestParseURIBad(t *testing.T) {
	const q = "?module-path=/m.so&pin-value=" + testPIN
	tests := []struct{ in, wantErr string }{
		{"file:/key.pem", "must start with"},
		{"pkcs11", "must start with"},
		{"pkcs11:" + q, "no path attributes"},
		{"pkcs11:object=k" + q, "token=LABEL is required"},
		{"pkcs11:token=t;object=k", "module-path is required"},
		{"pkcs11:token=t;object=k?module-path=/m.so", "a PIN is required"},
		{"pkcs11:token=t;object=k?module-path=relative.so&pin-value=1", "not an absolute path"},
		{"pkcs11:token=t;object=k?module-path=/m.so&pin-value=1&pin-source=file:/p", "not both"},
		{"pkcs11:token=t;object=k?", "empty query"},
		{"pkcs11:token=t;;object=k" + q, "empty path attribute"},
		{"pkcs11:token=t;object=k;" + q, "empty path attribute"},
		{"pkcs11:token=t;object=k" + q + "&", "empty query attribute"},
		{"pkcs11:token=t;object" + q, "not name=value"},
		{"pkcs11:token=;object=k" + q, "empty value"},
		{"pkcs11:token=t;token=u" + q, "more than once"},
		{"pkcs11:token=t;object=k" + q + "&module-path=/n.so", "more than once"},
		{"pkcs11:token=t;object=k" + q + "&token=u", "more than once"},
		{"pkcs11:token=t;object=k%2" + q, "bad percent-encoding"},
		{"pkcs11:token=t;object=k%zz" + q, "bad percent-encoding"},
		{"pkcs11:token=t;id=%0g" + q, "bad percent-encoding"},
		{"pkcs11:token=t;object=a b" + q, "must be percent-encoded"},
		{"pkcs11:token=t;object=a/b" + q, "must be percent-encoded"},
		{"pkcs11:token=t;object=a#b" + q, "must be percent-encoded"},
		{"pkcs11:token=t;colour=red" + q, "unknown path attribute"},
		{"pkcs11:Token=t" + q, "unknown path attribute"},
		{"pkcs11:token=t;object=k" + q + "&x-vendor=1", "unknown query attribute"},
		{"pkcs11:token=t;slot-id=0" + q, "selected by label only"},
		{"pkcs11:token=t;serial=abc" + q, "selected by label only"},
		{"pkcs11:token=t;manufacturer=SoftHSM" + q, "selected by label only"},
		{"pkcs11:token=t;model=v2" + q, "selected by label only"},
		{"pkcs11:token=t;library-version=2" + q, "module-path"},
		{"pkcs11:token=t;type=cert" + q, "not supported"},
		{"pkcs11:token=t;object=k?module-name=softhsm2&pin-value=1", "module-path"},
		{"pkcs11:token=t;object=k" + q + "&max-sessions=1", "max-sessions"},
		{"pkcs11:token=t;object=k" + q + "&max-sessions=100000", "max-sessions"},
		{"pkcs11:token=t;object=k" + q + "&max-sessions=ten", "max-sessions"},
		{"pkcs11:token=t;object=k?module-path=/m.so&pin-source=/etc/pin", "must be a file: URI"},
		{"pkcs11:token=t;object=k?module-path=/m.so&pin-source=file:pin", "not an absolute path"},
		{"pkcs11:token=t;object=k?module-path=/m.so&pin-source=file://host/pin", "only local files"},
		{"pkcs11:token=t;object=k?module-path=/m.so&pin-source=|/bin/echo", "must be a file: URI"},
	}
	for _, tt := range tests {
		u, err := ParseURI(tt.in)
		if err == nil {
			t.Errorf("ParseURI(%q) = %v, want error", tt.in, u)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseURI(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
		}
		if strings.Contains(err.Error(), testPIN) {
			t.Errorf("ParseURI(%q) error shows the PIN: %v", tt.in, err)
		}
	}
}

// Malformed PINs must not leak through the error either, whatever the
// mistake: bad encoding, forbidden characters, a missing '='.
func TestParseURIErrorsNeverShowPIN(t *testing.T) {
	for _, in := range []string{
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + testPIN + "%zz",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + testPIN + ";x",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + testPIN + " x",
		"pkcs11:token=t;object=k?module-path=/m.so&" + testPIN,
		"pkcs11:token=t;object=k;pin-value=" + testPIN + "?module-path=/m.so",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + testPIN + "&pin-value=" + testPIN,
		// An unencoded '&' inside the PIN: the rest reads as an attribute.
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=ab&" + testPIN + "=1",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=ab&" + strings.ToLower(testPIN) + "=1",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=ab&" + strings.ToLower(testPIN) + "=",
		"pkcs11:token=t;object=k?module-path=/m.so&pin-value=ab&" + strings.ToLower(testPIN) + "=1&" + strings.ToLower(testPIN) + "=1",
	} {
		_, err := ParseURI(in)
		if err == nil {
			t.Errorf("ParseURI(%q) accepted", in)
			continue
		}
		if strings.Contains(err.Error(), testPIN) || strings.Contains(err.Error(), strings.ToLower(testPIN)) {
			t.Errorf("error shows the PIN: %v", err)
		}
		// The URI named in Open's errors for an unparsable URI, too.
		if s := redactedOf(nil, in); strings.Contains(s, testPIN) {
			t.Errorf("redactedOf(%q) = %q shows the PIN", in, s)
		}
	}
}

func TestPINSourceFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		path, want, wantErr string
	}{
		{write("lf", "1234\n"), "1234", ""},
		{write("none", "1234"), "1234", ""},
		{write("inner", "12 34\n"), "12 34", ""},
		{write("empty", "\n"), "", "is empty"},
		{write("big", strings.Repeat("x", maxPINFile+1)), "", "larger than"},
		{filepath.Join(dir, "missing"), "", "no such file"},
	} {
		u, err := ParseURI("pkcs11:token=t;object=k?module-path=/m.so&pin-source=file:" + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		pin, err := u.PIN()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: PIN() = %q, %v; want error %q", tt.path, pin, err, tt.wantErr)
			}
			continue
		}
		if err != nil || pin != tt.want {
			t.Errorf("%s: PIN() = %q, %v; want %q", tt.path, pin, err, tt.want)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=policyca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin")
	f.Add("pkcs11:token=t;id=%01%02;type=private?module-path=/m.so&pin-value=" + testPIN + "&max-sessions=8")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		// Whatever parses has a canonical form that parses to itself.
		r := strings.Replace(u.Redacted(), "pin-value=REDACTED", "pin-value=x", 1)
		back, err := ParseURI(r)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", r, s, err)
		}
		if back.Redacted() != u.Redacted() {
			t.Fatalf("round trip %q -> %q", u.Redacted(), back.Redacted())
		}
		// The redacted form must not depend on the PIN at all: the same URI
		// with another PIN redacts to the same text. (Searching the output
		// for the PIN would flag PINs such as "-val" that happen to be part
		// of the fixed text "pin-value=REDACTED".)
		if u.pinValue != "" {
			// The other PIN differs in every byte and in length, so that a
			// leak of any part of the PIN shows.
			other := *u
			b := []byte(u.pinValue)
			for i := range b {
				b[i] ^= 1
			}
			other.pinValue = string(b) + "x"
			// Nor what the formatting verbs print.
			show := func(u *URI) string { return fmt.Sprintf("%s|%v|%+v|%#v|%q", u, u, u, u, u) }
			if other.Redacted() != u.Redacted() || show(&other) != show(u) {
				t.Fatalf("the printed URI depends on the PIN: %q vs %q", show(u), show(&other))
			}
		}
	})
}
