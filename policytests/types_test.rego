# IP, email, URI and CN rules, and the rule that a layer with allow rules
# needs an allow rule of the name's own type.
package policyca_test

import data.policyca

decide_ip(rules, addr) := x if {
	x := policyca.decision with input as order([ip(addr)])
		with data.policyca.authority as only({"ip": rules})
		with data.policyca.provisioners as {"dev": open}
}

test_ipv4_cidr if {
	decide_ip(["10.0.0.0/8"], "10.255.1.2").allow
	not decide_ip(["10.0.0.0/8"], "11.0.0.1").allow
	decide_ip(["192.168.0.0/16"], "192.168.0.0").allow
	not decide_ip(["172.16.0.0/12"], "172.32.0.1").allow
	decide_ip(["172.16.0.0/12"], "172.31.255.255").allow
}

test_ipv6_cidr if {
	decide_ip(["fc00::/7"], "fd12:3456::1").allow
	not decide_ip(["fc00::/7"], "fe80::1").allow
}

test_single_address if {
	decide_ip(["10.1.2.3"], "10.1.2.3").allow
	not decide_ip(["10.1.2.3"], "10.1.2.4").allow
	decide_ip(["::1"], "::1").allow
	not decide_ip(["::1"], "::2").allow
}

test_address_family_never_crosses if {
	not decide_ip(["0.0.0.0/0"], "::1").allow
	not decide_ip(["::/0"], "10.0.0.1").allow
}

test_ip_deny_inside_allow if {
	d := policyca.decision with input as order([ip("10.0.0.1"), ip("10.9.0.1")])
		with data.policyca.authority as {"allow": {"ip": ["10.0.0.0/8"]}, "deny": {"ip": ["10.9.0.0/16"]}}
		with data.policyca.provisioners as {"dev": open}
	refused(d) == {"10.9.0.1"}
	d.violations[0].reason == "10.9.0.1: denied by authority rule '10.9.0.0/16'"
}

test_type_without_allow_rules_is_refused if {
	d := policyca.decision with input as order([dns("a.internal"), ip("10.0.0.1")])
		with data.policyca.authority as only({"dns": [".internal"]})
		with data.policyca.provisioners as {"dev": open}
	refused(d) == {"10.0.0.1"}
}

test_layer_without_allow_rules_permits_all_types if {
	d := policyca.decision with input as order([dns("a.example"), ip("8.8.8.8")])
		with data.policyca.authority as {"deny": {"dns": ["b.example"]}}
		with data.policyca.provisioners as {"dev": open}
	d.allow
}

test_empty_allow_list_does_not_restrict if {
	d := policyca.decision with input as order([dns("a.example")])
		with data.policyca.authority as {"allow": {"dns": []}}
		with data.policyca.provisioners as {"dev": open}
	d.allow
}

# sign builds a sign-stage input whose CSR carries the given SANs and CN.
sign(ids, sans, cn) := object.union(order(ids), {
	"stage": "sign",
	"csr": {
		"subject": {"common_name": cn, "organization": [], "organizational_unit": []},
		"sans": sans,
		"key": {"type": "ecdsa", "curve": "P-256"},
		"requested_lifetime": null,
	},
})

decide_sans(authority, sans, cn) := x if {
	x := policyca.decision with input as sign([], sans, cn)
		with data.policyca.authority as authority
		with data.policyca.provisioners as {"dev": open}
}

test_email_rules if {
	a := only({"email": ["ops@corp.internal", "mail.internal", ".people.internal"]})
	decide_sans(a, {"email": ["ops@corp.internal"]}, "").allow
	not decide_sans(a, {"email": ["dev@corp.internal"]}, "").allow
	decide_sans(a, {"email": ["anyone@mail.internal"]}, "").allow
	not decide_sans(a, {"email": ["anyone@x.mail.internal"]}, "").allow
	decide_sans(a, {"email": ["bob@eng.people.internal"]}, "").allow
	not decide_sans(a, {"email": ["bob@people.internal"]}, "").allow
}

test_uri_rules_use_the_host if {
	a := only({"uri": [".svc.internal", "*.mesh.internal"]})
	decide_sans(a, {"uri": ["spiffe://a.svc.internal/ns/x"]}, "").allow
	decide_sans(a, {"uri": ["https://user@web.mesh.internal:8443/p?q#f"]}, "").allow
	not decide_sans(a, {"uri": ["https://a.b.mesh.internal/"]}, "").allow
	not decide_sans(a, {"uri": ["https://svc.internal/"]}, "").allow
	not decide_sans(a, {"uri": ["urn:uuid:1234"]}, "").allow
}

test_cn_equal_to_a_san_is_permitted if {
	a := only({"dns": [".internal"]})
	decide_sans(a, {"dns": ["web.internal"]}, "web.internal").allow
	d := decide_sans(a, {"dns": ["web.internal"]}, "Web Server")
	not d.allow
	d.violations[0].type == "cn"
	d.violations[0].reason == "Web Server: not allowed by authority"
}

test_cn_rules_are_exact if {
	a := only({"dns": [".internal"], "cn": ["Web Server"]})
	decide_sans(a, {"dns": ["web.internal"]}, "Web Server").allow
	not decide_sans(a, {"dns": ["web.internal"]}, "Web Server 2").allow
}

test_cn_of_a_refused_san_is_still_refused if {
	d := decide_sans(only({"dns": [".internal"]}), {"dns": ["www.example.com"]}, "www.example.com")
	not d.allow
	refused(d) == {"www.example.com"}
}
