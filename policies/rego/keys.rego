package policyca

# Key constraints on top of the CA's hard checks in Go (which refuse weak
# keys whatever the policy says). Each layer may set
#   "keys": {"min_rsa_bits": n, "ecdsa_curves": ["P-256", ...]}
# and only narrows. They apply at the sign stage, where the CSR is known.
# Which key types a provisioner accepts is a custom rule (see
# policies/examples/ecdsa-only).

key_value(k) := sprintf("rsa %d", [k.bits]) if k.type == "rsa"

key_value(k) := sprintf("ecdsa %s", [k.curve]) if k.type == "ecdsa"

key_value(k) := k.type if not k.type in {"rsa", "ecdsa"}

key_violation(kind, k, reason) := {
	"type": "key",
	"value": key_value(k),
	"layer": kind,
	"reason": sprintf("%s key: %s", [key_value(k), reason]),
}

violation contains key_violation(kind, k, sprintf("%s requires at least %d bits", [layer_label(kind), rules.keys.min_rsa_bits])) if {
	k := input.csr.key
	k.type == "rsa"
	some kind, rules in layer
	k.bits < rules.keys.min_rsa_bits
}

violation contains key_violation(kind, k, sprintf("curve not allowed by %s", [layer_label(kind)])) if {
	k := input.csr.key
	k.type == "ecdsa"
	some kind, rules in layer
	curves := rules.keys.ecdsa_curves
	not k.curve in curves
}
