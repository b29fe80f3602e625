package admin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNormalizePolicy(t *testing.T) {
	for _, ok := range []string{``, `null`, `{}`, `{"allow":{"dns":[".eng.internal"],"ip":["10.0.0.0/8"]},"deny":{"dns":["db.eng.internal"]},"allow_wildcard_names":true,"max_lifetime":"7d"}`} {
		if _, err := NormalizePolicy(json.RawMessage(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	// Days are stored as hours: the policy's Rego reads Go durations only.
	if n, err := NormalizePolicy(json.RawMessage(`{"max_lifetime":"7d"}`)); err != nil || !strings.Contains(string(n), `"168h0m0s"`) {
		t.Errorf("7d normalised to %s, %v", n, err)
	}
	for bad, want := range map[string]string{
		// What decisions would refuse is refused when stored.
		`{"deny":{"dns":["bücher.internal"]}}`: `xn--bcher-kva.internal`,
		`{"deny":{"ip":["::ffff:10.0.0.5"]}}`:  `write 10.0.0.5`,
		`{"allow":{"ip":["10.0.0.1/8"]}}`:      `host bits`,
		`{"allow":{"dns":["Eng.internal"]}}`:   `lower-case`,
		`{"alow":{}}`:                          `alow`,
		`{"allow":{"dsn":[]}}`:                 `dsn`,
		`{"allow":{"dns":[""]}}`:               `empty pattern`,
		`{"max_lifetime":"forever"}`:           `max_lifetime`,
		`{"max_lifetime":"0s"}`:                `max_lifetime`,
		`{"allow_wildcard_names":"yes"}`:       `allow_wildcard_names`,
		`{} {}`:                                `trailing`,
		`[1]`:                                  `account policy`,
	} {
		_, err := NormalizePolicy(json.RawMessage(bad))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", bad, err, want)
		}
	}
	if PolicySummary(nil) != "none" {
		t.Error("summary of no policy")
	}
}

// Account policies come over the admin API: any input is either refused
// with ErrInvalid or normalised to a fixed point.
func FuzzNormalizePolicy(f *testing.F) {
	f.Add([]byte(`{"allow":{"dns":[".eng.internal"]},"max_lifetime":"72h"}`))
	f.Add([]byte(`{"deny":{"ip":["10.0.0.0/8"]},"allow_wildcard_names":true}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := NormalizePolicy(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if n == nil {
			return
		}
		again, err := NormalizePolicy(n)
		if err != nil || string(again) != string(n) {
			t.Fatalf("not a fixed point: %s -> %s (%v)", n, again, err)
		}
		_ = PolicySummary(n)
	})
}
