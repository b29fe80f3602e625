package challtest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HTTP01Path is where RFC 8555 §8.3 puts the key authorization.
const HTTP01Path = "/.well-known/acme-challenge/"

// HTTPRequest is what an HTTP01Responder saw of one request.
type HTTPRequest struct {
	Host string
	Path string
}

// HTTP01Responder answers http-01 challenges: GET
// /.well-known/acme-challenge/<token> returns the key authorization set
// for the token, anything else 404. Redirects and custom handlers can be
// set per path to test how validators treat them.
type HTTP01Responder struct {
	addr string
	srv  *http.Server

	mu        sync.Mutex
	tokens    map[string]string
	redirects map[string]redirect
	handlers  map[string]http.Handler
	requests  []HTTPRequest
}

type redirect struct {
	location string
	code     int
}

// NewHTTP01Responder serves on addr (e.g. "127.0.0.1:0"), stopped by
// t.Cleanup.
func NewHTTP01Responder(t testing.TB, addr string) *HTTP01Responder {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("challtest: http-01 listen %s: %v", addr, err)
	}
	r := &HTTP01Responder{
		addr:      ln.Addr().String(),
		tokens:    map[string]string{},
		redirects: map[string]redirect{},
		handlers:  map[string]http.Handler{},
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("challtest: http-01 serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = r.srv.Close()
		<-done
	})
	return r
}

// Addr returns the listening "host:port".
func (r *HTTP01Responder) Addr() string { return r.addr }

// Port returns the listening port.
func (r *HTTP01Responder) Port() int { return port(r.addr) }

// Set makes the responder answer token with keyAuth.
func (r *HTTP01Responder) Set(token, keyAuth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[token] = keyAuth
}

// Delete forgets token.
func (r *HTTP01Responder) Delete(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tokens, token)
}

// SetRedirect answers path (e.g. HTTP01Path+token, or "/next") with a 302
// to location. An empty location removes the redirect.
func (r *HTTP01Responder) SetRedirect(path, location string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if location == "" {
		delete(r.redirects, path)
		return
	}
	r.redirects[path] = redirect{location: location, code: http.StatusFound}
}

// SetHandler serves path with h, ahead of tokens and redirects; a nil h
// removes it. It lets tests send odd answers (huge bodies, slow ones).
func (r *HTTP01Responder) SetHandler(path string, h http.Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h == nil {
		delete(r.handlers, path)
		return
	}
	r.handlers[path] = h
}

// Requests returns the requests seen so far.
func (r *HTTP01Responder) Requests() []HTTPRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]HTTPRequest(nil), r.requests...)
}

// ServeHTTP implements http.Handler.
func (r *HTTP01Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, HTTPRequest{Host: req.Host, Path: req.URL.Path})
	h := r.handlers[req.URL.Path]
	rd, isRedirect := r.redirects[req.URL.Path]
	keyAuth, isToken := "", false
	if tok, ok := strings.CutPrefix(req.URL.Path, HTTP01Path); ok {
		keyAuth, isToken = r.tokens[tok]
	}
	r.mu.Unlock()

	switch {
	case h != nil:
		h.ServeHTTP(w, req)
	case isRedirect:
		w.Header().Set("Location", rd.location)
		w.WriteHeader(rd.code)
	case isToken && req.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, keyAuth)
	default:
		http.NotFound(w, req)
	}
}

func port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
