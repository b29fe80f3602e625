// Package softhsm sets up SoftHSM2 (the software PKCS#11 token from the
// Debian package softhsm2) for tests and demonstrations: it renders
// softhsm2.conf.tmpl into a state directory, finds the module, and
// initialises tokens with softhsm2-util. init-token.sh does the same from
// a shell. SoftHSM2 is not an HSM: its keys are files under the token
// directory, so production CAs use a real HSM through the same URIs.
//
// Package softhsmtest builds on it to give each Go test its own token.
package softhsm
