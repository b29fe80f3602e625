# Helpers shared by the tests of the default policy bundle.
package policyca_test

# order builds an order-stage input for the given identifiers.
order(ids) := {
	"input_version": 1,
	"stage": "order",
	"provisioner": {"name": "dev", "type": "acme"},
	"account": {"id": "acct-1", "eab": null, "policy": null},
	"identifiers": ids,
	"csr": null,
	"ra": null,
	"time": "2026-01-01T00:00:00Z",
}

dns(v) := {"type": "dns", "value": v}

ip(v) := {"type": "ip", "value": v}

# open is a layer without rules: it permits everything.
open := {}

# only(rules) is a layer that allows exactly rules (an object of lists).
only(rules) := {"allow": rules}

# refused(d) is the set of refused identifier values of decision d.
refused(d) := {v.value | some v in d.violations}
