package bench

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Template renders the identifier of the n-th issuance (n counts from 0).
// Placeholders are {n}, {n+B}, {n%M} and {n%M+B} with decimal M > 0 and
// B ≥ 0, so that "bench-{n}.internal" gives distinct names and
// "127.0.0.{n%250+1}" cycles through 250 loopback addresses. A rendered
// value that parses as an IP address is an IP identifier (RFC 8738),
// anything else a DNS name.
type Template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit      string
	isVar    bool
	mod, add int // mod 0 means no modulus
}

// ParseTemplate parses s. A template without placeholders is valid (every
// order then asks for the same name, which is a legitimate load too).
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		if lit := rest[:open]; lit != "" {
			if strings.ContainsRune(lit, '}') {
				return nil, fmt.Errorf("identifier template %q: } without {", s)
			}
			t.parts = append(t.parts, tmplPart{lit: lit})
		}
		if open == len(rest) {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("identifier template %q: unclosed {", s)
		}
		p, err := parsePlaceholder(rest[open+1 : open+end])
		if err != nil {
			return nil, fmt.Errorf("identifier template %q: %w", s, err)
		}
		t.parts = append(t.parts, p)
		rest = rest[open+end+1:]
	}
	return t, nil
}

func parsePlaceholder(expr string) (tmplPart, error) {
	p := tmplPart{isVar: true}
	rest, ok := strings.CutPrefix(strings.TrimSpace(expr), "n")
	if !ok {
		return p, fmt.Errorf("placeholder {%s}: want {n}, {n+B}, {n%%M} or {n%%M+B}", expr)
	}
	if after, ok := strings.CutPrefix(rest, "%"); ok {
		m, tail := leadingInt(after)
		if m <= 0 {
			return p, fmt.Errorf("placeholder {%s}: modulus must be a positive integer", expr)
		}
		p.mod, rest = m, tail
	}
	if after, ok := strings.CutPrefix(rest, "+"); ok {
		b, tail := leadingInt(after)
		if b < 0 || tail != "" {
			return p, fmt.Errorf("placeholder {%s}: offset must be a non-negative integer", expr)
		}
		p.add, rest = b, ""
	}
	if rest != "" {
		return p, fmt.Errorf("placeholder {%s}: unexpected %q", expr, rest)
	}
	return p, nil
}

// leadingInt parses the decimal digits at the start of s; -1 if none.
func leadingInt(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return -1, s
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}

// HasPlaceholder reports whether renders differ with n.
func (t *Template) HasPlaceholder() bool {
	for _, p := range t.parts {
		if p.isVar {
			return true
		}
	}
	return false
}

// Render returns the identifier value for issuance n.
func (t *Template) Render(n int) string {
	var b strings.Builder
	for _, p := range t.parts {
		if !p.isVar {
			b.WriteString(p.lit)
			continue
		}
		v := n
		if p.mod > 0 {
			v %= p.mod
		}
		b.WriteString(strconv.Itoa(v + p.add))
	}
	return b.String()
}

// identifier is one rendered identifier, typed.
type identifier struct {
	value string
	ip    netip.Addr // valid for IP identifiers
}

func (t *Template) identifier(n int) identifier {
	v := t.Render(n)
	if ip, err := netip.ParseAddr(v); err == nil {
		return identifier{value: ip.Unmap().String(), ip: ip.Unmap()}
	}
	return identifier{value: strings.ToLower(strings.TrimSuffix(v, "."))}
}
