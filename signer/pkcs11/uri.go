package pkcs11

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultMaxSessions is the session pool size when the URI has no
// max-sessions. crypto11 keeps one session for the login and signs on the
// others, so 16 lets 15 signatures run at once: enough for the CA's
// concurrency without exhausting the session limit of small HSMs.
const DefaultMaxSessions = 16

// maxSessionsLimit bounds max-sessions: beyond it a typo (an extra zero)
// would open thousands of sessions on a shared HSM.
const maxSessionsLimit = 1024

// maxPINFile bounds what is read from a pin-source file; PKCS#11 PINs are
// short and a large file is a mistake (a key, a log) we should not slurp.
const maxPINFile = 4096

// URI is a parsed RFC 7512 PKCS#11 key URI, restricted to what policyca
// uses. Its String, GoString and Redacted methods never show the PIN.
//
// Accepted path attributes (after "pkcs11:", separated by ';'):
//
//	token   the token label (required). Tokens are selected by label only:
//	        slot numbers change when tokens are added or the HSM is
//	        re-initialised, and a CA must not sign with whatever token
//	        happens to sit in slot 0. slot-id, slot-description,
//	        slot-manufacturer, manufacturer, model, serial and library-*
//	        are refused rather than ignored, because ignoring a constraint
//	        the operator wrote would be a silent lie.
//	object  the key label (CKA_LABEL).
//	id      the key id (CKA_ID), as percent-encoded bytes, e.g. id=%01%a2.
//	type    only "private" (the key is always a private key).
//
// Accepted query attributes (after '?', separated by '&'):
//
//	module-path   absolute path of the PKCS#11 module (required; there is
//	              no default module).
//	pin-source    file:/path of a file holding the user PIN (one trailing
//	              newline ignored). Preferred.
//	pin-value     the user PIN itself (discouraged: it ends up in configs).
//	max-sessions  policyca extension: size of the session pool, 2..1024,
//	              default DefaultMaxSessions. One session holds the login,
//	              the others sign concurrently.
//
// Exactly one of pin-source and pin-value is required. Attribute names are
// case-sensitive, each may appear once, values must be non-empty and
// percent-encoding must be valid; anything else is an error.
type URI struct {
	Token       string
	Object      string
	ID          []byte
	ModulePath  string
	PINSource   string // the path, without "file:"
	MaxSessions int    // 0 when not given; see Sessions

	pinValue string
}

// refusedPath explains why attributes valid in RFC 7512 are not accepted.
var refusedPath = map[string]string{
	"slot-id":              "tokens are selected by label only: use token=LABEL",
	"slot-description":     "tokens are selected by label only: use token=LABEL",
	"slot-manufacturer":    "tokens are selected by label only: use token=LABEL",
	"manufacturer":         "tokens are selected by label only: remove it",
	"model":                "tokens are selected by label only: remove it",
	"serial":               "tokens are selected by label only: remove it",
	"library-manufacturer": "the module is chosen by module-path: remove it",
	"library-description":  "the module is chosen by module-path: remove it",
	"library-version":      "the module is chosen by module-path: remove it",
}

// ParseURI parses a pkcs11: key URI strictly (see URI). Its errors never
// contain the PIN.
func ParseURI(s string) (*URI, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(scheme, "pkcs11") {
		return nil, errors.New("pkcs11: URI must start with \"pkcs11:\"")
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	u := &URI{}
	if path == "" {
		return nil, errors.New("pkcs11: URI has no path attributes (want at least token=LABEL)")
	}
	seen := map[string]bool{}
	pinPresent := strings.Contains(strings.ToLower(s), "pin-value")
	for _, attr := range strings.Split(path, ";") {
		name, raw, err := splitAttr(attr, "path", seen, pinPresent)
		if err != nil {
			return nil, err
		}
		val, err := decode(raw, name, isPathChar)
		if err != nil {
			return nil, err
		}
		switch name {
		case "token":
			u.Token = string(val)
		case "object":
			u.Object = string(val)
		case "id":
			u.ID = val
		case "type":
			if string(val) != "private" {
				return nil, fmt.Errorf("pkcs11: URI: type=%q not supported (a signing key is type=private)", val)
			}
		default:
			if why, ok := refusedPath[name]; ok {
				return nil, fmt.Errorf("pkcs11: URI: path attribute %q not supported: %s", name, why)
			}
			return nil, fmt.Errorf("pkcs11: URI: unknown path attribute %q", name)
		}
	}
	if hasQuery {
		if query == "" {
			return nil, errors.New("pkcs11: URI: empty query after '?'")
		}
		for _, attr := range strings.Split(query, "&") {
			name, raw, err := splitAttr(attr, "query", seen, pinPresent)
			if err != nil {
				return nil, err
			}
			val, err := decode(raw, name, isQueryChar)
			if err != nil {
				return nil, err
			}
			switch name {
			case "module-path":
				if !filepath.IsAbs(string(val)) {
					return nil, fmt.Errorf("pkcs11: URI: module-path %q is not an absolute path", val)
				}
				u.ModulePath = filepath.Clean(string(val))
			case "pin-value":
				u.pinValue = string(val)
			case "pin-source":
				p, err := pinSourcePath(string(val))
				if err != nil {
					return nil, err
				}
				u.PINSource = p
			case "max-sessions":
				n, err := strconv.Atoi(string(val))
				if err != nil || n < 2 || n > maxSessionsLimit {
					return nil, fmt.Errorf("pkcs11: URI: max-sessions %q must be an integer from 2 to %d", val, maxSessionsLimit)
				}
				u.MaxSessions = n
			case "module-name":
				return nil, errors.New("pkcs11: URI: module-name not supported: give the module's absolute module-path")
			default:
				// With a PIN in the URI, an unknown "attribute" may be the
				// rest of a PIN holding an unencoded '&': not quoted then.
				if pinPresent {
					return nil, errors.New("pkcs11: URI: unknown query attribute (known: module-path, pin-source, pin-value, max-sessions)")
				}
				return nil, fmt.Errorf("pkcs11: URI: unknown query attribute %q", safeName(name))
			}
		}
	}
	switch {
	case u.Token == "":
		return nil, errors.New("pkcs11: URI: token=LABEL is required")
	case u.ModulePath == "":
		return nil, errors.New("pkcs11: URI: module-path is required")
	case seen["pin-value"] && seen["pin-source"]:
		return nil, errors.New("pkcs11: URI: give pin-source or pin-value, not both")
	case !seen["pin-value"] && !seen["pin-source"]:
		return nil, errors.New("pkcs11: URI: a PIN is required: give pin-source=file:/path (or pin-value)")
	}
	return u, nil
}

// splitAttr splits "name=value", rejecting empty names or values and
// names seen before. Path and query names share one namespace in RFC 7512,
// so a name may not appear once in each either.
func splitAttr(attr, part string, seen map[string]bool, pinPresent bool) (name, value string, err error) {
	name, value, ok := strings.Cut(attr, "=")
	if attr == "" {
		return "", "", fmt.Errorf("pkcs11: URI: empty %s attribute (stray separator)", part)
	}
	if !ok || name == "" {
		// Not quoted: without an '=' the whole attribute may be a
		// mistyped secret.
		return "", "", fmt.Errorf("pkcs11: URI: a %s attribute is not name=value", part)
	}
	// With a PIN in the URI, a "name" may be the rest of a PIN holding an
	// unencoded separator: names are not quoted then.
	shown := strconv.Quote(safeName(name))
	if pinPresent {
		shown = "(not shown: the URI holds a PIN)"
	}
	if value == "" {
		return "", "", fmt.Errorf("pkcs11: URI: %s attribute %s has an empty value", part, shown)
	}
	if seen[name] {
		return "", "", fmt.Errorf("pkcs11: URI: attribute %s appears more than once", shown)
	}
	seen[name] = true
	return name, value, nil
}

// safeName bounds an attribute name quoted in an error: without an '=' a
// whole secret could sit in the "name" position.
func safeName(name string) string {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "(invalid name)"
		}
	}
	if len(name) > 32 {
		return name[:32] + "…"
	}
	return name
}

// decode percent-decodes v, checking every literal byte against the
// character class RFC 7512 allows in that part. Errors name the attribute,
// and show the value only when it is not secret.
func decode(v, name string, allowed func(byte) bool) ([]byte, error) {
	shown := func() string {
		if name == "pin-value" {
			return "(redacted)"
		}
		return strconv.Quote(v)
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+2 >= len(v) || unhex(v[i+1]) < 0 || unhex(v[i+2]) < 0 {
				return nil, fmt.Errorf("pkcs11: URI: attribute %q: bad percent-encoding in %s", name, shown())
			}
			out = append(out, byte(unhex(v[i+1])<<4|unhex(v[i+2])))
			i += 2
		case allowed(c):
			out = append(out, c)
		default:
			return nil, fmt.Errorf("pkcs11: URI: attribute %q: character %q must be percent-encoded in %s", name, redactChar(name, c), shown())
		}
	}
	return out, nil
}

func redactChar(name string, c byte) string {
	if name == "pin-value" {
		return "?"
	}
	return string(rune(c))
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// isPathChar is RFC 7512 pk11-pchar without pct-encoded: unreserved and
// pk11-res-avail.
func isPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:[]@!$'()*+,=", c) >= 0
}

// isQueryChar is RFC 7512 pk11-qchar without pct-encoded: a path char or
// '/', '?', '|'.
func isQueryChar(c byte) bool {
	return isPathChar(c) || c == '/' || c == '?' || c == '|'
}

// pinSourcePath accepts "file:/abs/path" and "file:///abs/path". Other
// schemes (p11-kit's "|command") run programs or reach out of the host,
// which a CA's key configuration should not do implicitly.
func pinSourcePath(v string) (string, error) {
	rest, ok := strings.CutPrefix(v, "file:")
	if !ok {
		return "", fmt.Errorf("pkcs11: URI: pin-source %q must be a file: URI (file:/path/to/pin)", v)
	}
	if strings.HasPrefix(rest, "//") {
		rest = strings.TrimPrefix(rest, "//")
		if !strings.HasPrefix(rest, "/") {
			return "", fmt.Errorf("pkcs11: URI: pin-source %q: only local files (file:/path or file:///path)", v)
		}
	}
	if !filepath.IsAbs(rest) {
		return "", fmt.Errorf("pkcs11: URI: pin-source %q is not an absolute path", v)
	}
	return filepath.Clean(rest), nil
}

// Sessions is the session pool size to configure.
func (u *URI) Sessions() int {
	if u.MaxSessions == 0 {
		return DefaultMaxSessions
	}
	return u.MaxSessions
}

// PIN returns the user PIN from pin-value or by reading the pin-source
// file (one trailing newline, LF or CRLF, is dropped).
func (u *URI) PIN() (string, error) {
	if u.PINSource == "" {
		return u.pinValue, nil
	}
	f, err := os.Open(u.PINSource)
	if err != nil {
		return "", fmt.Errorf("pkcs11: pin-source: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPINFile+1))
	if err != nil {
		return "", fmt.Errorf("pkcs11: pin-source %s: %w", u.PINSource, err)
	}
	if len(b) > maxPINFile {
		return "", fmt.Errorf("pkcs11: pin-source %s is larger than %d bytes: not a PIN file", u.PINSource, maxPINFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("pkcs11: pin-source %s is empty", u.PINSource)
	}
	return string(b), nil
}

// Redacted returns the URI in canonical form with pin-value replaced by
// "REDACTED". It is what errors and logs show.
func (u *URI) Redacted() string {
	var b strings.Builder
	b.WriteString("pkcs11:token=")
	b.WriteString(encode([]byte(u.Token), isPathChar))
	if u.Object != "" {
		b.WriteString(";object=")
		b.WriteString(encode([]byte(u.Object), isPathChar))
	}
	if len(u.ID) > 0 {
		b.WriteString(";id=")
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	b.WriteString("?module-path=")
	b.WriteString(encode([]byte(u.ModulePath), isQueryChar))
	if u.PINSource != "" {
		b.WriteString("&pin-source=file:")
		b.WriteString(encode([]byte(u.PINSource), isQueryChar))
	} else {
		b.WriteString("&pin-value=REDACTED")
	}
	if u.MaxSessions != 0 {
		fmt.Fprintf(&b, "&max-sessions=%d", u.MaxSessions)
	}
	return b.String()
}

// String is Redacted, so that printing a URI with %v or %s is safe.
func (u *URI) String() string { return u.Redacted() }

// GoString keeps %#v from printing the PIN field.
func (u *URI) GoString() string { return "pkcs11.URI(" + strconv.Quote(u.Redacted()) + ")" }

func encode(b []byte, allowed func(byte) bool) string {
	var s strings.Builder
	for _, c := range b {
		// '&' and ';' are in neither class, so separators always encode.
		if allowed(c) {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, "%%%02X", c)
		}
	}
	return s.String()
}
