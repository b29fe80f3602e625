package core

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func dns(v string) Identifier { return Identifier{Type: DNS, Value: v} }
func ip(v string) Identifier  { return Identifier{Type: IP, Value: v} }

func TestNormalizeIdentifierValid(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	tests := []struct {
		in   Identifier
		want string
	}{
		{dns("example.internal"), "example.internal"},
		{dns("Example.INTERNAL"), "example.internal"},
		{dns("example.internal."), "example.internal"},
		{dns("localhost"), "localhost"},
		{dns("printer"), "printer"},
		{dns("a"), "a"},
		{dns("a-b.c-d.lan"), "a-b.c-d.lan"},
		{dns("1host.lan"), "1host.lan"},
		{dns("host.lan1"), "host.lan1"},
		{dns("*.example.internal"), "*.example.internal"},
		{dns("*.Example.Internal."), "*.example.internal"},
		{dns("*.lan"), "*.lan"},
		{dns("bücher.example"), "xn--bcher-kva.example"},
		{dns("BÜCHER.example"), "xn--bcher-kva.example"},
		{dns("xn--bcher-kva.example"), "xn--bcher-kva.example"},
		{dns("XN--BCHER-KVA.example"), "xn--bcher-kva.example"},
		{dns("*.bücher.example"), "*.xn--bcher-kva.example"},
		{dns("ｅｘａｍｐｌｅ．ｃｏｍ"), "example.com"},
		{dns(label63 + ".lan"), label63 + ".lan"},
		{dns(name253), name253},
		{dns(name253 + "."), name253},
		{dns("0x.lan"), "0x.lan"},
		{dns("10.0.0.1.lan"), "10.0.0.1.lan"},
		{dns("deadbeef"), "deadbeef"},
		{ip("10.0.0.1"), "10.0.0.1"},
		{ip("2001:DB8::1"), "2001:db8::1"},
		{ip("2001:db8:0:0:0:0:0:1"), "2001:db8::1"},
		{ip("::ffff:10.0.0.1"), "10.0.0.1"},
		{ip("::FFFF:a00:1"), "10.0.0.1"},
		{ip("::1"), "::1"},
		{ip("::1.2.3.4"), "::102:304"},
		{ip("0.0.0.0"), "0.0.0.0"},
	}
	for _, tc := range tests {
		t.Run(string(tc.in.Type)+" "+tc.in.Value, func(t *testing.T) {
			got, err := NormalizeIdentifier(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tc.in.Type || got.Value != tc.want {
				t.Fatalf("got %+v, want %s", got, tc.want)
			}
			again, err := NormalizeIdentifier(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: %+v, %v", again, err)
			}
		})
	}
}

func TestNormalizeIdentifierInvalid(t *testing.T) {
	label64 := strings.Repeat("a", 64)
	label63 := strings.Repeat("a", 63)
	name254 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 62)}, ".")
	tests := []struct {
		in   Identifier
		want ErrorKind
	}{
		{dns(""), KindMalformed},
		{dns("."), KindMalformed},
		{dns("example.lan.."), KindMalformed},
		{dns(".example.lan"), KindMalformed},
		{dns("a..b"), KindMalformed},
		{dns("-a.lan"), KindMalformed},
		{dns("a-.lan"), KindMalformed},
		{dns("ab--cd.lan"), KindMalformed},
		{dns("a_b.lan"), KindMalformed},
		{dns("a b.lan"), KindMalformed},
		{dns("a/b"), KindMalformed},
		{dns("a@b.lan"), KindMalformed},
		{dns("host:443"), KindMalformed},
		{dns(label64 + ".lan"), KindMalformed},
		{dns(name254), KindMalformed},
		{dns("*." + name254[2:]), KindMalformed},
		{dns(strings.Repeat("a.", 600)), KindMalformed},
		{dns("*"), KindMalformed},
		{dns("*."), KindMalformed},
		{dns("*.*.lan"), KindMalformed},
		{dns("a.*.lan"), KindMalformed},
		{dns("*a.lan"), KindMalformed},
		{dns("a*.lan"), KindMalformed},
		{dns("lan.*"), KindMalformed},
		{dns("**.lan"), KindMalformed},
		{dns("xn--zz.lan"), KindMalformed},
		{dns("xn--a.lan"), KindMalformed},
		{dns("xn--example-.lan"), KindMalformed}, // decodes to ASCII
		{dns("10.0.0.1"), KindMalformed},
		{dns("10.0.0.1."), KindMalformed},
		{dns("::1"), KindMalformed},
		{dns("[::1]"), KindMalformed},
		{dns("10.0.0.0/8"), KindMalformed},
		{dns("10.1"), KindMalformed},
		{dns("167772161"), KindMalformed},
		{dns("0x7f000001"), KindMalformed},
		{dns("0x7f.1"), KindMalformed},
		{dns("host.123"), KindMalformed},
		{dns("host.0x1f"), KindMalformed},
		{dns("\x00.lan"), KindMalformed},
		{dns("\xff.lan"), KindMalformed},
		{dns("a\u200db.lan"), KindMalformed}, // joiner outside its context
		{ip(""), KindMalformed},
		{ip("10.0.0"), KindMalformed},
		{ip("010.0.0.1"), KindMalformed},
		{ip("10.0.0.256"), KindMalformed},
		{ip("10.0.0.0/8"), KindMalformed},
		{ip("10.0.0.1/32"), KindMalformed},
		{ip("fe80::1%eth0"), KindMalformed},
		{ip("[::1]"), KindMalformed},
		{ip(" 10.0.0.1"), KindMalformed},
		{ip("localhost"), KindMalformed},
		{ip(strings.Repeat("1", 2000)), KindMalformed},
		{Identifier{Type: "email", Value: "a@b.lan"}, KindUnsupportedIdentifier},
		{Identifier{Type: "DNS", Value: "example.lan"}, KindUnsupportedIdentifier},
		{Identifier{Type: "", Value: "example.lan"}, KindUnsupportedIdentifier},
	}
	for _, tc := range tests {
		name := string(tc.in.Type) + " " + tc.in.Value
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			got, err := NormalizeIdentifier(tc.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %+v, %v; want a *core.Error", got, err)
			}
			if e.Kind != tc.want || e.Detail == "" {
				t.Fatalf("got %v, want kind %s", err, tc.want)
			}
			if e.Identifier == nil || *e.Identifier != tc.in {
				t.Fatalf("error identifier %v, want %+v", e.Identifier, tc.in)
			}
			if got != (Identifier{}) {
				t.Fatalf("got %+v with an error", got)
			}
			if len(e.Detail) > 400 {
				t.Fatalf("detail is %d bytes long", len(e.Detail))
			}
		})
	}
}

func TestNormalizeIdentifiers(t *testing.T) {
	tests := []struct {
		name string
		in   []Identifier
		want []Identifier
	}{
		{"one", []Identifier{dns("a.lan")}, []Identifier{dns("a.lan")}},
		{
			"sorted by type then value",
			[]Identifier{ip("10.0.0.2"), dns("b.lan"), ip("10.0.0.10"), dns("a.lan")},
			[]Identifier{dns("a.lan"), dns("b.lan"), ip("10.0.0.10"), ip("10.0.0.2")},
		},
		{
			"duplicates after normalisation",
			[]Identifier{dns("A.lan."), dns("a.lan"), ip("::ffff:10.0.0.1"), ip("10.0.0.1"), dns("a.LAN")},
			[]Identifier{dns("a.lan"), ip("10.0.0.1")},
		},
		{
			"wildcard and base name are distinct",
			[]Identifier{dns("*.a.lan"), dns("a.lan")},
			[]Identifier{dns("*.a.lan"), dns("a.lan")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got, err := NormalizeIdentifiers(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Fatal("the input was modified")
			}
		})
	}
}

func TestNormalizeIdentifiersErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       []Identifier
		kind     ErrorKind
		subs     []Identifier // nil: the error itself names the identifier
		identity *Identifier
	}{
		{name: "nil", in: nil, kind: KindMalformed},
		{name: "empty", in: []Identifier{}, kind: KindMalformed},
		{name: "one invalid", in: []Identifier{dns("a.lan"), dns("a_b.lan")}, kind: KindMalformed, identity: &Identifier{DNS, "a_b.lan"}},
		{
			name: "several invalid",
			in:   []Identifier{dns("-x.lan"), dns("ok.lan"), ip("1.2.3.4/8")},
			kind: KindMalformed,
			subs: []Identifier{dns("-x.lan"), ip("1.2.3.4/8")},
		},
		{
			name: "several unsupported",
			in:   []Identifier{{"email", "a@b"}, {"uri", "https://x"}},
			kind: KindUnsupportedIdentifier,
			subs: []Identifier{{"email", "a@b"}, {"uri", "https://x"}},
		},
		{
			name: "mixed kinds",
			in:   []Identifier{{"email", "a@b"}, dns("a..b")},
			kind: KindMalformed,
			subs: []Identifier{{"email", "a@b"}, dns("a..b")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeIdentifiers(tc.in)
			if got != nil {
				t.Fatalf("got %v with an error", got)
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("got %v, want kind %s", err, tc.kind)
			}
			if tc.identity != nil && (e.Identifier == nil || *e.Identifier != *tc.identity) {
				t.Fatalf("error names %v, want %v", e.Identifier, tc.identity)
			}
			if len(e.Subproblems) != len(tc.subs) {
				t.Fatalf("%d subproblems, want %d", len(e.Subproblems), len(tc.subs))
			}
			for i, sub := range e.Subproblems {
				if sub.Identifier == nil || *sub.Identifier != tc.subs[i] {
					t.Fatalf("subproblem %d names %v, want %v", i, sub.Identifier, tc.subs[i])
				}
			}
		})
	}
}

func FuzzNormalizeIdentifier(f *testing.F) {
	for _, s := range []string{
		"example.lan", "Example.LAN.", "*.a.lan", "bücher.example", "xn--bcher-kva.example",
		"10.0.0.1", "::ffff:10.0.0.1", "fe80::1%eth0", "a..b", "ｅｘａｍｐｌｅ．ｃｏｍ", "*.", "0x7f.1",
	} {
		f.Add("dns", s)
		f.Add("ip", s)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		in := Identifier{Type: IdentifierType(typ), Value: value}
		got, err := NormalizeIdentifier(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Identifier == nil || *e.Identifier != in {
				t.Fatalf("error %v does not name %+v", err, in)
			}
			return
		}
		again, err := NormalizeIdentifier(got)
		if err != nil {
			t.Fatalf("%+v normalised to %+v, which is refused: %v", in, got, err)
		}
		if again != got {
			t.Fatalf("not idempotent: %+v -> %+v -> %+v", in, got, again)
		}
		if got.Type == DNS && (len(got.Value) > 253 || strings.ToLower(got.Value) != got.Value || strings.HasSuffix(got.Value, ".")) {
			t.Fatalf("%+v normalised to %q", in, got.Value)
		}
	})
}
