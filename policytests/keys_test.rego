# Key constraints from data (on top of the CA's hard checks in Go).
package policyca_test

import data.policyca

with_key(key) := object.union(sign([dns("a.internal")], {"dns": ["a.internal"]}, ""), {"csr": {"key": key}})

decide_key(authority, provisioner, key) := x if {
	x := policyca.decision with input as with_key(key)
		with data.policyca.authority as authority
		with data.policyca.provisioners as {"dev": provisioner}
}

test_min_rsa_bits if {
	a := {"keys": {"min_rsa_bits": 3072}}
	decide_key(a, open, {"type": "rsa", "bits": 3072}).allow
	d := decide_key(a, open, {"type": "rsa", "bits": 2048})
	not d.allow
	d.violations[0] == {
		"type": "key", "value": "rsa 2048", "layer": "authority",
		"reason": "rsa 2048 key: authority requires at least 3072 bits",
	}
}

test_ecdsa_curves if {
	a := {"keys": {"ecdsa_curves": ["P-256", "P-384"]}}
	decide_key(a, open, {"type": "ecdsa", "curve": "P-384"}).allow
	narrowed := decide_key(a, {"keys": {"ecdsa_curves": ["P-256"]}}, {"type": "ecdsa", "curve": "P-384"})
	not narrowed.allow
	narrowed.violations[0].reason == "ecdsa P-384 key: curve not allowed by provisioner 'dev'"
}

test_key_rules_ignore_other_types if {
	decide_key({"keys": {"min_rsa_bits": 4096, "ecdsa_curves": ["P-384"]}}, open, {"type": "ed25519"}).allow
}

test_no_key_rules_at_order_stage if {
	d := policyca.decision with input as order([dns("a.internal")])
		with data.policyca.authority as {"keys": {"min_rsa_bits": 4096}}
		with data.policyca.provisioners as {"dev": open}
	d.allow
}
