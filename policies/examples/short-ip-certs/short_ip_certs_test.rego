package policyca_examples_short_ip_certs_test

import data.policyca

req(ids, lifetime) := {
	"stage": "sign",
	"provisioner": {"name": "acme", "type": "acme"},
	"identifiers": ids,
	"csr": {"requested_lifetime": lifetime},
}

ip := {"type": "ip", "value": "10.0.0.7"}

dns := {"type": "dns", "value": "a.internal"}

# Only this example's violations: with the default bundle loaded too, the
# name rules add their own.
violations(r) := {v | some v in vs; v.layer == "custom"} if {
	vs := policyca.violation with input as r
}

test_seven_days_is_the_limit if {
	count(violations(req([ip], "168h"))) == 0
	count(violations(req([ip], "168h0m1s"))) == 1
}

test_reason if {
	some v in violations(req([ip, dns], "720h"))
	v.reason == "10.0.0.7: certificates for IP addresses may be valid for at most 168h (asked for 720h)"
	v.value == "10.0.0.7"
}

test_names_unaffected if {
	count(violations(req([dns], "720h"))) == 0
}

test_granted_lifetime_when_none_requested if {
	count(violations(req([ip], null))) == 0 with data.policyca.lifetime as "24h"
	count(violations(req([ip], null))) == 1 with data.policyca.lifetime as "2160h"
}
