# An account bound with an EAB key whose reference is "web-<n>" may only
# get names "web-<n>.<dept>.internal": one host name per key, in any
# department. Name lists cannot say this because the allowed name depends
# on the requesting account's EAB reference.
package policyca

violation contains v if {
	ref := input.account.eab.reference
	regex.match(`^web-[0-9]+$`, ref)
	some id in input.identifiers
	not regex.match(sprintf(`^%s\.[a-z0-9]([a-z0-9-]*[a-z0-9])?\.internal$`, [ref]), id.value)
	v := {
		"type": id.type,
		"value": id.value,
		"layer": "custom",
		"reason": sprintf("%s: the key '%s' may only get %s.<dept>.internal", [id.value, ref, ref]),
	}
}
