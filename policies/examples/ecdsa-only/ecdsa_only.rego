# Certificates from the "iot" provisioner must have ECDSA keys (the
# devices' TLS stacks only do ECDSA). Applies at the sign stage, when the
# CSR's key is known.
package policyca

ecdsa_only_provisioners := {"iot"}

violation contains v if {
	input.provisioner.name in ecdsa_only_provisioners
	k := input.csr.key
	k.type != "ecdsa"
	v := {
		"type": "key",
		"value": k.type,
		"layer": "custom",
		"reason": sprintf("%s key: provisioner '%s' requires an ECDSA key", [k.type, input.provisioner.name]),
	}
}
