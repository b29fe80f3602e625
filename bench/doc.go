// Package bench holds the load generators behind `policyca bench`: an ACME
// issuance generator that drives any RFC 8555 server through the complete
// http-01 flow (it answers the challenges itself on a local port), and a
// signing generator that measures a crypto.Signer opened from a key URI.
//
// They report throughput, latency percentiles, an error histogram keyed by
// ACME problem type, and the generator's own CPU time, so that an operator
// benchmarking a CA on the same machine can subtract the client's share.
// The generators measure the server, not client politeness: they poll
// quickly instead of sleeping Retry-After seconds and never retry a server
// error (only badNonce, which every ACME client retries).
package bench
