// Package e2e holds end-to-end tests: they build the policyca binary, run it
// as a real process and drive it with real ACME clients (Debian's certbot).
// It has no non-test code.
package e2e
