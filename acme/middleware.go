package acme

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"
)

type logKey struct{}

// logger returns the request's logger (carrying its request id), or the
// server's logger outside a request.
func (s *Server) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return s.log
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records what was written, for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// withRequestLog gives every request an id (X-Request-Id, and a field of
// every log line about it) and writes one access log line per request.
// Client errors log at debug so a misbehaving client cannot flood the log.
func (s *Server) withRequestLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		l := s.log.With("request_id", id)
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), logKey{}, l)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		lvl := slog.LevelInfo
		if sw.status >= 400 && sw.status < 500 {
			lvl = slog.LevelDebug
		}
		l.Log(r.Context(), lvl, "http request",
			"method", r.Method, "path", r.URL.Path, "status", sw.status,
			"bytes", sw.bytes, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

// withNonce puts a fresh Replay-Nonce on every response, errors included,
// so a client that got badNonce can retry at once (RFC 8555 §6.5).
func (s *Server) withNonce(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := s.nonces.Nonce(r.Context())
		if err != nil {
			s.logger(r.Context()).Error("cannot issue nonce", "error", err)
		} else {
			w.Header().Set("Replay-Nonce", n)
		}
		next.ServeHTTP(w, r)
	})
}
