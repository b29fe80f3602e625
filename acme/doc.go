// Package acme is the RFC 8555 front end of policyca: the HTTP handlers for
// every ACME resource (one file per resource), the JWS request chain
// (content type, size limit, parse, nonce, url, key lookup, signature, then
// the signing account's provisioner and status), the
// order/authorization/challenge state machine and the mapping of typed
// *core.Error values to RFC 7807 problem documents (problem.go).
//
// The package never signs and never validates challenges by itself: it
// calls an Authority (the in-process CA or a remote CA client) and a
// per-provisioner Validator. State lives in a Store; every change of a
// mutable object is a versioned update that is retried from a fresh read on
// a version conflict, so concurrent requests and validations never lose an
// update.
//
// Choices where RFC 8555 leaves room, made here and relied on by tests:
//   - newAccount without termsOfServiceAgreed while terms are configured is
//     refused with userActionRequired (403) and a Link rel="terms-of-service".
//   - A resource of another account (order, authorization, challenge,
//     certificate, account) is refused with unauthorized (403).
//   - revokeCert for a certificate this CA does not know (or whose DER does
//     not match the stored one) is a notFound problem (404, type malformed):
//     the certificate is public data, so its absence leaks nothing.
//   - Subscribers may revoke with reasons 0, 1, 3, 4 and 5 only; the others
//     are for the CA and are badRevocationReason.
//   - A CSR the CA refuses as badCSR puts the order back to "ready" so the
//     client can finalize again with a good CSR; any other signing error
//     makes the order invalid.
//   - revokeCert by account is allowed to the account that ordered the
//     certificate and to one that holds valid, unexpired authorizations for
//     all its names (§7.6; a wildcard name needs a wildcard authorization);
//     others get unauthorized naming a name they hold no authorization for.
//   - The directory and newNonce answer a POST-as-GET signed by an account
//     as well as GET and HEAD (§6.3); newNonce answers HEAD with 200, GET
//     and POST-as-GET with 204.
//   - A valid authorization lists only the challenge that was validated, an
//     invalid one only the challenge that failed (§7.1.4); one made invalid
//     without an attempt (expired, deactivated) lists them all.
//   - An account's orders list (§7.1.2.1) leaves out invalid orders: those
//     stored as invalid, and pending or ready ones past their expiry even
//     if nobody has read them since (the store applies the same expiry rule
//     as a read, at the server's clock). A failed or deactivated
//     authorization makes its order invalid when it is recorded; an order
//     made invalid only by an authorization that expired before it
//     (AuthzLifetime shorter than OrderLifetime) or by a lost validation
//     is still listed until it is read. A paging cursor stays usable when
//     its order drops out of the list.
//   - Only one challenge of an authorization may be processing at a time.
//     Validations run on at most ValidationWorkers goroutines at once;
//     further ones wait for a slot.
//   - A pending authorization past its expiry reads as invalid, a valid one
//     as expired; a pending or ready order past its expiry reads as invalid.
//     These are persisted lazily, on the read that notices them.
package acme
