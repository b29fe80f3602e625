package acme

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/policyca/policyca/acme/nonce"
)

func TestNewServerOptions(t *testing.T) {
	st := openTestStore(t)
	auth := newFakeAuthority(t, st)
	nonces, err := nonce.NewMemory(16)
	if err != nil {
		t.Fatal(err)
	}
	good := func() Options {
		return Options{
			BaseURL:      "https://ca.internal:8443/",
			Provisioners: []Provisioner{{Name: "p", Validator: &fakeValidator{}}},
			Store:        st, Authority: auth, Nonces: nonces,
		}
	}
	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{"good", func(*Options) {}, ""},
		{"relative base", func(o *Options) { o.BaseURL = "/acme" }, "BaseURL"},
		{"ftp base", func(o *Options) { o.BaseURL = "ftp://ca.internal" }, "BaseURL"},
		{"base with query", func(o *Options) { o.BaseURL = "https://ca.internal/?x=1" }, "BaseURL"},
		{"no store", func(o *Options) { o.Store = nil }, "Store"},
		{"no authority", func(o *Options) { o.Authority = nil }, "Authority"},
		{"no nonces", func(o *Options) { o.Nonces = nil }, "Nonces"},
		{"no provisioners", func(o *Options) { o.Provisioners = nil }, "provisioner"},
		{"no validator", func(o *Options) { o.Provisioners[0].Validator = nil }, "Validator"},
		{"bad name", func(o *Options) { o.Provisioners[0].Name = "a/b" }, "name"},
		{"empty name", func(o *Options) { o.Provisioners[0].Name = "" }, "name"},
		{"duplicate", func(o *Options) { o.Provisioners = append(o.Provisioners, o.Provisioners[0]) }, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.mutate(&o)
			s, err := NewServer(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if s.base != "https://ca.internal:8443" || s.maxBody != DefaultMaxBodyBytes || cap(s.sem) != DefaultValidationWorkers ||
					s.orderLifetime != DefaultOrderLifetime || s.authzLifetime != DefaultAuthzLifetime || s.pageSize != DefaultOrdersPageSize {
					t.Errorf("defaults not applied: %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewServer error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Bytes(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestInternalErrorsAreLoggedNotShown: the client sees a generic problem;
// the log has the cause, tagged with the request id the client got.
func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	var logs syncBuffer
	env := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	env.authority.signErr = errPlain("pkcs11: CKR_DEVICE_ERROR on slot 3")
	c := env.newClient(t)
	c.register()
	o, u := c.newOrder("dns:a.internal")
	o = c.solve(o, u, "")
	r := c.post(o.Finalize, map[string]string{"csr": csrFor(t, "dns:a.internal")})
	p := r.wantProblem(t, 500, "serverInternal")
	if strings.Contains(string(r.body), "CKR_DEVICE_ERROR") || p.Detail != "internal error" {
		t.Fatalf("cause leaked to the client: %s", r.body)
	}
	rid := r.header.Get("X-Request-Id")
	var sawCause, sawAccess bool
	for _, l := range logs.lines(t) {
		if l["request_id"] != rid {
			continue
		}
		if e, _ := l["error"].(string); strings.Contains(e, "CKR_DEVICE_ERROR") && l["level"] == "ERROR" {
			sawCause = true
		}
		if l["msg"] == "http request" && l["status"] == float64(500) {
			sawAccess = true
		}
	}
	if !sawCause || !sawAccess {
		t.Errorf("request %s: cause logged %v, access logged %v", rid, sawCause, sawAccess)
	}
}
