package e2e

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rrProxy is a round-robin TCP load balancer for the multi-node tests: each
// new connection goes to the next backend, TLS passes through untouched
// (the nodes' certificate names the proxy's address), and a backend that
// refuses the connection is skipped, as a load balancer's health check
// would take a dead node out of rotation.
type rrProxy struct {
	ln       net.Listener
	backends []string
	conns    []atomic.Int64 // connections forwarded to each backend
	next     atomic.Uint64

	mu     sync.Mutex
	active map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// newRRProxy listens on a loopback port; backends are set with start.
func newRRProxy(t testing.TB) *rrProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rrProxy{ln: ln, active: map[net.Conn]struct{}{}}
	t.Cleanup(p.close)
	return p
}

func (p *rrProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *rrProxy) start(backends ...string) {
	p.backends = backends
	p.conns = make([]atomic.Int64, len(backends))
	p.wg.Go(func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.handle(c) })
		}
	})
}

// counts returns how many connections each backend got so far.
func (p *rrProxy) counts() []int64 {
	out := make([]int64, len(p.conns))
	for i := range p.conns {
		out[i] = p.conns[i].Load()
	}
	return out
}

func (p *rrProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.active[c] = struct{}{}
	} else {
		delete(p.active, c)
	}
}

func (p *rrProxy) handle(client net.Conn) {
	p.track(client, true)
	defer func() {
		p.track(client, false)
		client.Close()
	}()
	for range p.backends {
		i := int(p.next.Add(1)-1) % len(p.backends)
		backend, err := net.DialTimeout("tcp", p.backends[i], 2*time.Second)
		if err != nil {
			continue // down: the next one
		}
		p.conns[i].Add(1)
		p.track(backend, true)
		defer func() {
			p.track(backend, false)
			backend.Close()
		}()
		done := make(chan struct{}, 2)
		go func() { io.Copy(backend, client); done <- struct{}{} }()
		go func() { io.Copy(client, backend); done <- struct{}{} }()
		// One direction ending (a node killed, a client gone) ends both.
		<-done
		return
	}
}

func (p *rrProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.active {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
