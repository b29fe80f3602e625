package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"testing"
)

// strictObjectTokens is the json.Decoder-based strictObject that the
// faster walk replaced; it is kept as the reference the walk must agree
// with.
func strictObjectTokens(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	obj := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		if _, dup := obj[name]; dup {
			return nil, &dupError{name}
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		obj[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return obj, nil
}

var strictObjectSeeds = []string{
	``, ` `, `{}`, ` { } `, `{"a":1}`, `{"a":1,"b":"x"}`, `{"a":1,"a":2}`,
	`{"a":1}{}`, `{"a":1} x`, `{"a":1}` + "\n", `[]`, `"s"`, `null`, `1`,
	`{"a":{"b":[1,2,{"c":"}"}]},"d":"\"}"}`, `{"\u0061":1,"a":2}`,
	`{"a\\b":"c\\\"d","e":[]}`, `{"a":true,"b":false,"c":null,"d":-1.5e3}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":"` + "\xff" + `"}`,
	`{"a":"\ud800"}`, `{"a":[1,[2,[3]]],"b":{}}`, "{\t\"a\"\r:\n1 }",
	`{"protected":"eyJ","payload":"","signature":"AA"}`,
}

func TestStrictObjectMatchesTokenParser(t *testing.T) {
	for _, s := range strictObjectSeeds {
		compareStrictObject(t, []byte(s))
	}
}

// FuzzStrictObject checks that the walk accepts exactly what the token
// parser accepts, with the same members, and refuses duplicates the same
// way.
func FuzzStrictObject(f *testing.F) {
	for _, s := range strictObjectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(compareStrictObject)
}

func compareStrictObject(t *testing.T, data []byte) {
	got, gerr := strictObject(data)
	want, werr := strictObjectTokens(data)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: strictObject error %v, token parser error %v", data, gerr, werr)
	}
	// On invalid JSON the token parser may meet a duplicate before the
	// syntax error; only valid JSON must give the same duplicate.
	var gd, wd *dupError
	if json.Valid(data) && (errors.As(gerr, &gd) != errors.As(werr, &wd) || (gd != nil && gd.name != wd.name)) {
		t.Fatalf("%q: duplicate errors differ: %v, %v", data, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("%q: members %q, token parser %q", data, got, want)
	}
	// jsonString must decode what json.Unmarshal decodes as a string, and
	// refuse everything else, null included.
	for name, raw := range got {
		var v any
		werr := json.Unmarshal(raw, &v)
		ws, isString := v.(string)
		if werr == nil && !isString {
			werr = errors.New("not a string")
		}
		gs, gerr := jsonString(raw)
		if (gerr == nil) != (werr == nil) || gs != ws {
			t.Fatalf("member %q = %s: jsonString %q (%v), json.Unmarshal %q (%v)", name, raw, gs, gerr, ws, werr)
		}
	}
}
