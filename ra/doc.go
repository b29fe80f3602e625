// Package ra is the registration authority: the part that faces ACME
// clients on their network. It validates challenges (http-01, dns-01,
// tls-alpn-01) from inside that network, through an injectable Dialer and
// Resolver so that an RA uses its own routes and its own DNS view, runs the
// order-time policy, and relays validated requests to a CA, in-process or
// remote.
//
// Challenge validation (Validator) decisions worth knowing:
//
//   - Errors are *core.Error of kind malformed (input the validator cannot
//     check, e.g. an IP identifier for dns-01), connection (target
//     unreachable, timeout), dns (NXDOMAIN, SERVFAIL, DNS timeout, no
//     records), tls (handshake failed, acme-tls/1 not negotiated),
//     unauthorized (a tls-alpn-01 certificate that is not one for this
//     identifier) or incorrectResponse (the target answered, but not with
//     the key authorization or its digest; also non-200 answers and refused
//     redirects for http-01).
//   - http-01 follows at most 10 redirects, to http or https only, on ports
//     80/443 or the configured HTTPPort (http) and TLSALPNPort (https); an
//     https target's certificate is not verified. At most 8 KiB of body is
//     read; trailing whitespace is ignored. No connection is kept alive:
//     each validation, and each redirect hop, resolves the name afresh and
//     dials a currently-resolved address (RFC 8555 §8.3). A pooled
//     connection would let a name that moved be answered by the host it
//     used to point to; fresh resolution beats connection reuse.
//   - dns-01 follows CNAMEs (RFC 8555 §8.4) and validates a wildcard at its
//     base name.
//   - tls-alpn-01 sends the reverse-DNS name as SNI for IP identifiers
//     (RFC 8738 §6) and does not check the certificate's self-signature,
//     only its content (RFC 8737 §3). "Exactly one SAN" is checked on the
//     subjectAltName extension's DER: crypto/x509 drops the kinds of name
//     it does not know (otherName, directoryName, registeredID...), and an
//     extra one of those must not pass.
package ra
