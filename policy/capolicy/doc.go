// Package capolicy plugs a policy.Engine into the CA as its sign-time
// policy (ca.SignPolicy). It is a separate package so that package policy
// does not import package ca, which lets the CA's dependencies (the store,
// which implements policy.DecisionSink) import package policy.
package capolicy
