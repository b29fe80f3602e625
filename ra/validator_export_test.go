package ra

import "net"

// NewSystemResolver exposes the system resolver to the external tests,
// which point its net.Resolver at a loopback DNS server.
func NewSystemResolver(r *net.Resolver) Resolver { return systemResolver{r: r} }
