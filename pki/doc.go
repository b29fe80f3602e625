// Package pki builds the CA hierarchy that `policyca init` creates: key
// generation by KeySpec, the self-signed root, intermediates, the
// certificate for the CA's own HTTPS listener and client certificates for
// admins and registration authorities, plus PEM file helpers.
//
// Leaf certificates for ACME clients are not made here: they go through
// package ca, which checks CSRs, applies policy and lints before signing.
// The helpers for serial numbers and key identifiers are shared with it.
package pki
