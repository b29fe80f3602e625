# The data shipped in policies/rego/data.json: permissive for internal
# names and private addresses, nothing public.
package policyca_test

import data.policyca

default_decision(ids) := x if {
	x := policyca.decision with input as object.union(order(ids), {"provisioner": {"name": "acme", "type": "acme"}})
}

test_default_allows_internal_names if {
	default_decision([
		dns("printer.lan"), dns("a.b.internal"), dns("nas.home.arpa"),
		dns("localhost"), dns("app.localhost"), dns("*.k8s.internal"),
	]).allow
}

test_default_refuses_public_names if {
	d := default_decision([dns("www.example.com"), dns("internal"), dns("lan"), dns("evil-internal.com")])
	refused(d) == {"www.example.com", "internal", "lan", "evil-internal.com"}
}

test_default_allows_private_addresses if {
	default_decision([
		ip("10.1.2.3"), ip("172.16.0.1"), ip("172.31.255.254"), ip("192.168.1.1"),
		ip("127.0.0.1"), ip("fd00::1"), ip("::1"),
	]).allow
}

test_default_refuses_public_addresses if {
	d := default_decision([ip("8.8.8.8"), ip("172.32.0.1"), ip("2001:db8::1"), ip("::2")])
	refused(d) == {"8.8.8.8", "172.32.0.1", "2001:db8::1", "::2"}
}

test_default_lifetime_cap if {
	default_decision([dns("a.internal")]).lifetime == "2160h"
}

test_default_refuses_weak_curves if {
	req := object.union(sign([dns("a.internal")], {"dns": ["a.internal"]}, ""), {
		"provisioner": {"name": "acme", "type": "acme"},
		"csr": {"key": {"type": "ecdsa", "curve": "P-521"}},
	})
	d := policyca.decision with input as req
	not d.allow
}
