package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/policyca/policyca/internal/tick"
)

// Watch polls the bundle source every PollInterval until ctx is done: a
// Path is reloaded when its content changes, a URL is fetched with
// If-None-Match and reloaded unless the server answers 304. Load errors
// are handled by Reload (logged, counted, last good bundle kept); Watch
// only returns ctx's error. SIGHUP handling belongs to the caller, which
// calls Reload.
func (e *Engine) Watch(ctx context.Context) error {
	tick.Every(ctx, e.poll, e.poll1)
	return ctx.Err()
}

// poll1 is one Watch tick.
func (e *Engine) poll1(ctx context.Context) {
	if e.url == "" {
		fp, err := fingerprint(e.src.name, e.maxBytes)
		if err != nil {
			// A bundle being rewritten may be briefly missing; the next
			// tick sees the result. Reload would count it as a failure.
			e.log.DebugContext(ctx, "policy bundle not readable", "source", e.src.name, "err", err)
			return
		}
		e.reloadMu.Lock()
		same := fp == e.seen
		e.reloadMu.Unlock()
		if same {
			return
		}
	}
	_ = e.Reload(ctx) // logged and counted by Reload
}

// fingerprint hashes the bundle files at name (a directory or a file), so
// that a change of content is seen whatever happened to mtimes.
func fingerprint(name string, maxBytes int64) (string, error) {
	h := sha256.New()
	st, err := os.Stat(name)
	if err != nil {
		return "", err
	}
	files := []string{name}
	if st.IsDir() {
		if files, err = dirBundleFiles(name); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00", f)
		if err := hashFile(h, f, maxBytes); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, name string, maxBytes int64) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, maxBytes+1))
	if err == nil && n > maxBytes {
		err = fmt.Errorf("%s is larger than %d bytes", name, maxBytes)
	}
	return err
}

var errNotModified = errors.New("bundle not modified")

// fetch downloads the bundle at URL, conditionally on the ETag of the
// loaded one.
func (e *Engine) fetch(ctx context.Context) ([]byte, string, error) {
	shown := shownURL(e.url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("bundle %s: cannot make the request", shown)
	}
	conditional := e.etag != "" && e.cur.Load() != nil
	if conditional {
		req.Header.Set("If-None-Match", e.etag)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, query included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("bundle %s: %w", shown, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		// Only an answer to If-None-Match: a 304 to a request that named no
		// bundle (none is loaded yet) says nothing about what to load.
		if !conditional {
			return nil, "", fmt.Errorf("bundle %s: HTTP %s to a request without If-None-Match", shown, resp.Status)
		}
		return nil, "", errNotModified
	default:
		return nil, "", fmt.Errorf("bundle %s: HTTP %s", shown, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, e.maxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("bundle %s: %w", shown, err)
	}
	if int64(len(data)) > e.maxBytes {
		return nil, "", fmt.Errorf("bundle %s is larger than %d bytes", shown, e.maxBytes)
	}
	return data, resp.Header.Get("ETag"), nil
}
