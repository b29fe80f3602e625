// Package challtest is test infrastructure for ACME challenge validation:
// an in-process DNS server on loopback, http-01 and tls-alpn-01 responders,
// and a lego dns-01 provider that publishes records in that DNS server. It
// lets unit and integration tests validate real challenges over real
// sockets without touching any network but 127.0.0.0/8 and ::1.
//
// Everything here is started with a testing.TB and stopped by t.Cleanup.
package challtest
