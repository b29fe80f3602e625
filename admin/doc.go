// Package admin owns the CA's operator operations: External Account Binding
// keys (add, list, revoke, set an account policy), provisioners (add, list),
// and the decision log. The same operations run locally on a state directory
// (Service) and remotely through the admin API (Handler, Client): HTTPS on
// the CA's listener under /admin/v1/, allowed only to client certificates
// issued by the CA's admin CA, a separate root that `policyca init` creates
// so that no certificate issued over ACME can ever act as an operator.
//
// The HMAC secret of an EAB key is returned once, by AddEAB, and appears in
// no listing, log line or error.
package admin
