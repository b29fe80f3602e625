// Package ca is the certificate authority core: it checks certificate
// signing requests in Go (signature, key strength, names equal the
// order's), asks the sign-time policy, builds the certificate profile,
// lints the certificate before the real key signs it, stores it, and
// handles revocation and CRLs.
//
// The CA never speaks ACME: it takes core.SignRequest values from the ACME
// front end, in process or relayed by a registration authority, and
// returns core.Certificate records and *core.Error refusals. It re-checks
// everything in a request, because the caller may be a remote RA.
package ca
