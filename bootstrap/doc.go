// Package bootstrap initialises a CA state directory: root and intermediate
// keys and certificates, the TLS certificate for the CA's own listener
// (issued by the intermediate), the configuration file and the database
// location. It is what `policyca init` and `make run` use, and what tests use
// to stand up a CA with no other step.
package bootstrap
