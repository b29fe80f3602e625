# DNS name rules: exact names, "*." (exactly one more label) and "."
# (any depth below, not the apex), label boundaries, deny inside allow.
package policyca_test

import data.policyca

decide_dns(rules, name) := x if {
	x := policyca.decision with input as order([dns(name)])
		with data.policyca.authority as only({"dns": rules})
		with data.policyca.provisioners as {"dev": open}
}

test_exact_name_matches_itself_only if {
	decide_dns(["host.example.com"], "host.example.com").allow
	not decide_dns(["host.example.com"], "a.host.example.com").allow
	not decide_dns(["host.example.com"], "example.com").allow
	not decide_dns(["host.example.com"], "xhost.example.com").allow
}

test_star_matches_exactly_one_more_label if {
	decide_dns(["*.example.com"], "a.example.com").allow
	not decide_dns(["*.example.com"], "a.b.example.com").allow
	not decide_dns(["*.example.com"], "example.com").allow
}

test_dot_matches_any_depth_below_not_apex if {
	decide_dns([".example.com"], "a.example.com").allow
	decide_dns([".example.com"], "a.b.c.example.com").allow
	not decide_dns([".example.com"], "example.com").allow
}

test_label_boundary if {
	not decide_dns([".example.com"], "badexample.com").allow
	not decide_dns(["*.example.com"], "a.badexample.com").allow
	not decide_dns([".example.com"], "example.com.evil").allow
	decide_dns([".com"], "badexample.com").allow
}

test_single_label_names if {
	decide_dns(["localhost"], "localhost").allow
	not decide_dns([".localhost"], "localhost").allow
	decide_dns([".localhost"], "app.localhost").allow
}

test_deny_inside_allow_wins if {
	d := policyca.decision with input as order([dns("x.prod.corp.com"), dns("x.dev.corp.com")])
		with data.policyca.authority as {"allow": {"dns": [".corp.com"]}, "deny": {"dns": [".prod.corp.com"]}}
		with data.policyca.provisioners as {"dev": open}
	not d.allow
	refused(d) == {"x.prod.corp.com"}
	d.violations[0].reason == "x.prod.corp.com: denied by authority rule '.prod.corp.com'"
	d.violations[0].layer == "authority"
	d.violations[0].type == "dns"
}

test_deny_without_allow_rules if {
	d := policyca.decision with input as order([dns("a.example.com"), dns("b.example.com")])
		with data.policyca.authority as {"deny": {"dns": ["b.example.com"]}}
		with data.policyca.provisioners as {"dev": open}
	refused(d) == {"b.example.com"}
}

test_deny_exact_does_not_cover_subdomains if {
	d := policyca.decision with input as order([dns("a.b.example.com")])
		with data.policyca.authority as {"deny": {"dns": ["b.example.com"]}}
		with data.policyca.provisioners as {"dev": open}
	d.allow
}

test_one_violation_per_name_and_layer if {
	d := policyca.decision with input as order([dns("x.prod.corp.com")])
		with data.policyca.authority as {"allow": {"dns": ["x.prod.corp.com"]}, "deny": {"dns": [".prod.corp.com", ".corp.com"]}}
		with data.policyca.provisioners as {"dev": open}
	count(d.violations) == 1

	# The first matching rule in sort order is named.
	d.violations[0].reason == "x.prod.corp.com: denied by authority rule '.corp.com'"
}

test_several_identifiers_one_refused if {
	d := policyca.decision with input as order([dns("a.lab.internal"), dns("b.lab.internal"), dns("www.example.com")])
		with data.policyca.authority as only({"dns": [".lab.internal"]})
		with data.policyca.provisioners as {"dev": open}
	not d.allow
	count(d.violations) == 1
	d.violations[0].value == "www.example.com"
	d.violations[0].reason == "www.example.com: not allowed by authority"
}

# Rules as objects keyed by pattern (the form the engine indexes lists into)
# behave exactly like lists.
test_object_form_rules if {
	rules := {".example.com": true, "*.svc.internal": true}
	decide_obj := policyca.decision with input as order([dns("a.b.example.com"), dns("x.svc.internal")])
		with data.policyca.authority as {"allow": {"dns": rules}}
		with data.policyca.provisioners as {"dev": open}
	decide_obj.allow
	refuse_obj := policyca.decision with input as order([dns("example.com"), dns("a.b.svc.internal")])
		with data.policyca.authority as {"allow": {"dns": rules}}
		with data.policyca.provisioners as {"dev": open}
	refused(refuse_obj) == {"example.com", "a.b.svc.internal"}
}

# Rules as sets (the form the engine indexes lists into) and precomputed
# candidates (sets, as the engine passes them) behave like the plain forms.
test_set_form_rules_and_candidates if {
	rules := {".example.com", "*.svc.internal"}
	names := [dns("a.b.example.com"), dns("x.svc.internal"), dns("example.com")]
	cands := {"dns": {
		"a.b.example.com": {"a.b.example.com", "*.b.example.com", ".b.example.com", ".example.com", ".com"},
		"x.svc.internal": {"x.svc.internal", "*.svc.internal", ".svc.internal", ".internal"},
		"example.com": {"example.com", "*.com", ".com"},
	}}
	d := policyca.decision with input as object.union(order(names), {"candidates": cands})
		with data.policyca.authority as {"allow": {"dns": rules}}
		with data.policyca.provisioners as {"dev": open}
	refused(d) == {"example.com"}
}
