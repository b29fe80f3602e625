// Package raapi is the CA side of the RA↔CA API (DESIGN.md shape 2,
// docs/ra.md): HTTPS and JSON under /ra/v1/ on the CA's listener, for
// registration authorities authenticated by client certificates from the
// RA CA (a root of its own, like the admin CA). The RA's name is its
// certificate's common name; every call is checked against the CA's
// registry (a disabled RA is refused at once) and against the provisioners
// assigned to that RA.
//
// The CA trusts an RA for challenge validation and nothing else: it runs
// the sign-time policy itself with account data from its own store, and an
// RA that claims an EAB key or account policy the account does not have is
// refused, logged and recorded in the decision log.
//
// Enrolment (POST /ra/v1/enroll) is the one call without a client
// certificate: it redeems a one-time token (only a hash of whose secret is
// stored) for the RA's first client certificate.
//
// The wire types here are shared with the RA's client (package ra).
package raapi
