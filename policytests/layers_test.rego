# Layers (authority, provisioner, account) only narrow; wildcards; unknown
# provisioners.
package policyca_test

import data.policyca

with_account(ids, policy) := object.union(order(ids), {"account": {"id": "acct-1", "eab": null, "policy": policy}})

test_provisioner_narrows if {
	d := policyca.decision with input as order([dns("a.dev.internal"), dns("a.prod.internal")])
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": only({"dns": [".dev.internal"]})}
	refused(d) == {"a.prod.internal"}
	d.violations[0].reason == "a.prod.internal: not allowed by provisioner 'dev'"
	d.violations[0].layer == "provisioner"
}

test_provisioner_never_widens if {
	d := policyca.decision with input as order([dns("www.example.com")])
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": only({"dns": [".com"]})}
	not d.allow
	d.violations[0].layer == "authority"
}

test_account_narrows if {
	d := policyca.decision with input as with_account([dns("a.team.internal"), dns("b.other.internal")], only({"dns": [".team.internal"]}))
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": open}
	refused(d) == {"b.other.internal"}
	d.violations[0].reason == "b.other.internal: not allowed by account policy"
	d.violations[0].layer == "account"
}

test_account_never_widens if {
	d := policyca.decision with input as with_account([dns("www.example.com")], only({"dns": [".example.com"]}))
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": open}
	not d.allow
	{v.layer | some v in d.violations} == {"authority"}
}

test_account_deny if {
	d := policyca.decision with input as with_account([dns("db.internal")], {"deny": {"dns": ["db.internal"]}})
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": open}
	d.violations[0].reason == "db.internal: denied by account policy rule 'db.internal'"
}

test_every_failing_layer_is_reported if {
	d := policyca.decision with input as with_account([dns("www.example.com")], only({"dns": [".team.internal"]}))
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": only({"dns": [".dev.internal"]})}
	{v.layer | some v in d.violations} == {"authority", "provisioner", "account"}
}

test_unknown_provisioner_is_refused if {
	d := policyca.decision with input as order([dns("a.internal")])
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"other": open}
	not d.allow
	d.violations[0].type == "provisioner"
	d.violations[0].reason == "provisioner 'dev' is not configured in the policy"
}

test_wildcard_refused_without_allow_wildcard_names if {
	d := policyca.decision with input as order([dns("*.lab.internal")])
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": open}
	not d.allow
	d.violations[0].reason == "*.lab.internal: wildcard names are not allowed by authority"
}

wild_authority(rules) := {"allow": {"dns": rules}, "allow_wildcard_names": true}

test_wildcard_allowed_with_allow_wildcard_names if {
	d := policyca.decision with input as order([dns("*.lab.internal")])
		with data.policyca.authority as wild_authority([".internal"])
		with data.policyca.provisioners as {"dev": open}
	d.allow
}

test_wildcard_matches_as_a_name_with_first_label_star if {
	# "*.lab.internal" is one label below lab.internal, so "*.lab.internal"
	# and ".lab.internal" match it, "*.internal" does not.
	allowed_by_star := policyca.decision with input as order([dns("*.lab.internal")])
		with data.policyca.authority as wild_authority(["*.lab.internal"])
		with data.policyca.provisioners as {"dev": open}
	allowed_by_star.allow
	refused_by_depth := policyca.decision with input as order([dns("*.lab.internal")])
		with data.policyca.authority as wild_authority(["*.internal"])
		with data.policyca.provisioners as {"dev": open}
	not refused_by_depth.allow
}

test_wildcard_refused_by_a_narrower_layer if {
	d := policyca.decision with input as order([dns("*.lab.internal")])
		with data.policyca.authority as wild_authority([".internal"])
		with data.policyca.provisioners as {"dev": {"allow_wildcard_names": false}}
	not d.allow
	d.violations[0].reason == "*.lab.internal: wildcard names are not allowed by provisioner 'dev'"
}

test_lower_layer_cannot_enable_wildcards if {
	d := policyca.decision with input as order([dns("*.lab.internal")])
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": {"allow_wildcard_names": true}}
	not d.allow
}
