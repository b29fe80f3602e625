package core

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if len(id) != IDLen {
			t.Fatalf("%q: length %d, want %d", id, len(id), IDLen)
		}
		if strings.Trim(id[:12], "0123456789abcdef") != "" {
			t.Fatalf("%q: prefix is not lowercase hex", id)
		}
		if r, err := base64.RawURLEncoding.DecodeString(id[12:]); err != nil || len(r) != 16 {
			t.Fatalf("%q: random part %v, %d bytes", id, err, len(r))
		}
		if seen[id] {
			t.Fatalf("%q twice", id)
		}
		seen[id] = true
	}
}

// TestNewIDSortsByTime: byte order (SQLite's BINARY collation, and any
// collation of lowercase hex) follows the creation time, to the
// millisecond, whatever the random part.
func TestNewIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, step := range []time.Duration{time.Millisecond, time.Second, 255 * time.Millisecond, 24 * time.Hour, 100 * 365 * 24 * time.Hour} {
		for range 100 {
			a, b := newIDAt(base), newIDAt(base.Add(step))
			if a >= b {
				t.Fatalf("step %v: %q sorts after %q", step, a, b)
			}
		}
	}
	if got := newIDAt(time.UnixMilli(0x0123456789ab))[:12]; got != "0123456789ab" {
		t.Errorf("prefix %q, want 0123456789ab", got)
	}
}
