// Package core holds the domain types shared by the ACME front end, the CA
// and the stores: accounts, orders, authorizations, challenges, certificates,
// and the typed errors that only become RFC 8555 problem documents at the
// HTTP edge. It depends only on the standard library and golang.org/x/net/idna (identifier normalisation).
package core
