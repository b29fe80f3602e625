package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the flusher and the test.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	delay  time.Duration
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	time.Sleep(l.delay)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEveryRecordInOrder: records written by many goroutines all arrive,
// each goroutine's in its order, whole, in fewer writes than records;
// records written after Close go straight through.
func TestEveryRecordInOrder(t *testing.T) {
	var out lockedBuffer
	out.delay = 100 * time.Microsecond
	w := New(&out, 4096) // small, so that writers also wait for the flusher
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := fmt.Fprintf(w, "g%d %d\n", g, i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "after close\n")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != goroutines*each+1 || lines[len(lines)-1] != "after close" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	next := make([]int, goroutines)
	for _, l := range lines[:len(lines)-1] {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d %d", &g, &i); err != nil {
			t.Fatalf("torn record %q", l)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: record %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	if out.writes >= goroutines*each {
		t.Errorf("%d writes for %d records: nothing was batched", out.writes, goroutines*each)
	}
}

type failing struct{}

func (failing) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestCloseReportsWriteErrors(t *testing.T) {
	w := New(failing{}, 0)
	fmt.Fprintln(w, "x")
	if err := w.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close = %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close forgot the error")
	}
}
