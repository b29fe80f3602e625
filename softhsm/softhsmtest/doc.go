// Package softhsmtest gives a Go test its own SoftHSM2 token in a
// temporary directory. It is for tests only (in this package and
// elsewhere: ca, cmd, e2e). A machine without SoftHSM2 fails the test
// with an install hint instead of skipping it: a CA whose HSM path is
// never exercised in CI is not tested.
//
// NewToken sets SOFTHSM2_CONF with t.Setenv, so such tests cannot run in
// parallel with each other. SoftHSM2 reads SOFTHSM2_CONF when the module
// is initialised, which crypto11 does when the first context opens and
// undoes when the last one closes: tests must close every signer they
// open, or the next test's token stays invisible.
package softhsmtest
