package policyca_examples_eab_hostname_test

import data.policyca

req(ref, ids) := {
	"stage": "order",
	"provisioner": {"name": "acme", "type": "acme"},
	"account": {"id": "a1", "eab": {"kid": "k1", "reference": ref}, "policy": null},
	"identifiers": [{"type": "dns", "value": v} | some v in ids],
}

# Only this example's violations: with the default bundle loaded too, the
# name rules add their own.
refused(r) := {v.value | some v in vs; v.layer == "custom"} if {
	vs := policyca.violation with input as r
}

test_own_name_in_any_department if {
	refused(req("web-17", ["web-17.sales.internal", "web-17.hr.internal"])) == set()
}

test_other_names_refused if {
	refused(req("web-17", ["web-18.sales.internal", "web-17.internal", "a.web-17.sales.internal", "web-17.sales.internal.evil.com"])) == {
		"web-18.sales.internal", "web-17.internal",
		"a.web-17.sales.internal", "web-17.sales.internal.evil.com",
	}
}

test_reason_names_the_key if {
	some v in policyca.violation with input as req("web-17", ["x.internal"])
	v.reason == "x.internal: the key 'web-17' may only get web-17.<dept>.internal"
	v.layer == "custom"
}

test_other_references_are_not_constrained if {
	refused(req("ops", ["anything.internal"])) == set()
	refused(req("web-17x", ["anything.internal"])) == set()
}

test_accounts_without_eab_are_not_constrained if {
	r := object.union(req("web-17", ["anything.internal"]), {"account": {"id": "a1", "eab": null, "policy": null}})
	refused(r) == set()
}
