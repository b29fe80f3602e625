# METADATA
# title: policyca default policy
# description: |
#   The decision that policyca evaluates at newOrder (stage "order") and
#   before signing (stage "sign"). See docs/policy.md for the input
#   document and the semantics of the name rules.
package policyca

# The decision document read by the CA. A request is allowed exactly when
# no rule, in any file of package policyca, reports a violation: custom
# policies extend the bundle by adding "violation contains ..." rules, and
# can only narrow what the data allows.
#
# It is written as two cases (with and without a lifetime) rather than one
# object.union: OPA evaluates it in fewer steps.
decision := {"allow": vs == [], "violations": vs, "lifetime": lifetime} if {
	vs := [v | some v in violation]
} else := {"allow": vs == [], "violations": vs} if {
	vs := [v | some v in violation]
}

# layer holds the configured rule layers by kind. A layer that is absent is
# not configured and constrains nothing, except the provisioner: a request
# for a provisioner the policy does not know is refused (see below), so that
# adding a provisioner to the server configuration cannot silently widen
# what gets signed.
#
# It is one complete rule rather than one rule per kind on purpose: OPA
# evaluates a rule per key separately each time the whole object is read,
# which cost about a tenth of a one-name decision.
layer := object.union(
	object.union(
		{"authority": a | a := data.policyca.authority},
		{"provisioner": p | p := data.policyca.provisioners[input.provisioner.name]},
	),
	{"account": a | a := input.account.policy; is_object(a)},
)

# layer_label names a layer in reasons shown to clients and operators.
layer_label("authority") := "authority"

layer_label("provisioner") := sprintf("provisioner '%s'", [input.provisioner.name])

layer_label("account") := "account policy"

violation contains v if {
	not layer.provisioner
	v := {
		"type": "provisioner",
		"value": input.provisioner.name,
		"layer": "provisioner",
		"reason": sprintf("provisioner '%s' is not configured in the policy", [input.provisioner.name]),
	}
}
