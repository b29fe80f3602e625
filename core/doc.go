// Package core holds the domain types shared by the ACME front end, the CA
// and the stores: accounts, orders, authorizations, challenges, certificates,
// and the typed errors that only become RFC 8555 problem documents at the
// HTTP edge. It has no dependencies beyond the standard library.
package core
