package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

const wellKnown = "/.well-known/acme-challenge/"

// responder answers http-01 challenges for all workers from one token map.
// It may listen on several addresses: the CA connects to whatever an
// identifier resolves to, so an IP identifier 127.0.0.7 needs a socket on
// 127.0.0.7, and "x.localhost" is tried on ::1 before 127.0.0.1.
type responder struct {
	tokens sync.Map // token → key authorization
	srv    *http.Server
	lns    []net.Listener
	wg     sync.WaitGroup
}

// listenResponder opens every address in addrs; addresses marked optional
// may fail (::1 on a host without IPv6) without failing the run.
func listenResponder(addrs []string, optional map[string]bool) (*responder, error) {
	r := &responder{}
	r.srv = &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		// The CA's validator opens a fresh connection per validation; keep
		// idle ones short so a long run does not accumulate them.
		IdleTimeout: 5 * time.Second,
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			if optional[a] {
				continue
			}
			r.close()
			return nil, fmt.Errorf("http-01 responder: %w", err)
		}
		r.lns = append(r.lns, ln)
	}
	for _, ln := range r.lns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			// Serve returns ErrServerClosed on close; any other error ends
			// only this listener, and validations against it will then fail
			// and be counted, which is the honest outcome.
			_ = r.srv.Serve(ln)
		}()
	}
	return r, nil
}

func (r *responder) set(token, keyAuth string) { r.tokens.Store(token, keyAuth) }
func (r *responder) del(token string)          { r.tokens.Delete(token) }

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	tok, ok := strings.CutPrefix(req.URL.Path, wellKnown)
	if !ok || req.Method != http.MethodGet {
		http.NotFound(w, req)
		return
	}
	v, ok := r.tokens.Load(tok)
	if !ok {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.WriteString(w, v.(string))
}

// close stops serving at once: the run is over, and a validation still in
// flight belongs to an issuance that has already been counted.
func (r *responder) close() {
	_ = r.srv.Close()
	for _, ln := range r.lns {
		_ = ln.Close()
	}
	r.wg.Wait()
}
