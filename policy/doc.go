// Package policy is policyca's OPA adapter: every order (stage "order") and
// every signature (stage "sign") is decided by the Rego bundle it loads.
//
// It owns loading bundles (a directory or an OPA .tar.gz, optionally signed
// and then verified), compiling them once into a prepared query for
// data.policyca.decision, hot reload with last-known-good, the input
// document (Input, versioned, with a JSON Schema in schema/), the decision
// (Decision, validated strictly: anything malformed denies) and the
// decision log (DecisionSink). OrderChecker and SignChecker adapt an Engine
// to the ACME front end and to the CA without importing either.
//
// Builtins that reach outside the process (http.send, net.lookup_ip_addr,
// opa.runtime) are removed from the capabilities: a decision depends only
// on the bundle and the input, so the same request always gets the same
// answer and a policy cannot be used to exfiltrate requests.
package policy
