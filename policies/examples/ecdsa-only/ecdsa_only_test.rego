package policyca_examples_ecdsa_only_test

import data.policyca

req(prov, key) := {
	"stage": "sign",
	"provisioner": {"name": prov, "type": "acme"},
	"identifiers": [{"type": "dns", "value": "sensor.iot.internal"}],
	"csr": {"key": key},
}

# Only this example's violations: with the default bundle loaded too, the
# name rules add their own.
violations(r) := {v | some v in vs; v.layer == "custom"} if {
	vs := policyca.violation with input as r
}

test_ecdsa_accepted if {
	count(violations(req("iot", {"type": "ecdsa", "curve": "P-256"}))) == 0
}

test_rsa_and_ed25519_refused if {
	some v in violations(req("iot", {"type": "rsa", "bits": 4096}))
	v.reason == "rsa key: provisioner 'iot' requires an ECDSA key"
	count(violations(req("iot", {"type": "ed25519"}))) == 1
}

test_other_provisioners_unaffected if {
	count(violations(req("acme", {"type": "rsa", "bits": 2048}))) == 0
}

test_order_stage_unaffected if {
	r := object.remove(req("iot", {}), ["csr"])
	count(violations(object.union(r, {"stage": "order"}))) == 0
}
