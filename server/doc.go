// Package server wires one policyca CA node from its configuration: the
// store, the signer, the CA core, the validators, the ACME front end, and
// the HTTPS listener with /healthz. It owns the process lifecycle (graceful
// shutdown, crash recovery of orders left in "processing").
package server
