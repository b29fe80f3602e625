package policyca

# Name rules of the authority, provisioner and account layers.
#
# Rules of one type may be given as a list of patterns (as in data.json and
# account policies) or as an object whose keys are the patterns (the form
# the policyca engine converts lists to when it loads a bundle, so that the
# conversion below costs nothing per decision). Every non-IP match is a
# lookup of the name's candidate patterns: the cost of a decision grows with
# the number of labels in a name, not with the number of rules. Everything
# per request is computed once, in complete rules, and then looked up.

# san_names are the names a certificate would carry: the order's
# identifiers and, at sign time, every SAN of the CSR.
san_names contains {"type": id.type, "value": id.value} if some id in input.identifiers

san_names contains {"type": t, "value": v} if {
	some t, values in input.csr.sans
	some v in values
}

# A subject CN equal to one of the request's SANs is checked as that SAN;
# any other CN must pass the cn rules.
cn_names contains {"type": "cn", "value": cn} if {
	cn := input.csr.subject.common_name
	cn != ""
	not cn_is_san(cn)
}

cn_is_san(cn) if {
	some n in san_names
	n.value == cn
}

names := san_names | cn_names

ip_names := {n | some n in names; n.type == "ip"}

wildcard(n) if {
	n.type == "dns"
	startswith(n.value, "*.")
}

# candidates[n] are the patterns that would match the (non-IP) name n. For a
# DNS name a.b.c they are the name itself, "*.b.c" (one more label below
# b.c) and ".b.c", ".c" (any depth below each proper ancestor): never
# ".a.b.c", which matches only names below a.b.c.
candidates := {n: cs |
	some n in names
	n.type != "ip"
	cs := name_candidates(n)
}

name_candidates(n) := dns_candidates(n.value) if n.type == "dns"

name_candidates(n) := email_candidates(n.value) if n.type == "email"

name_candidates(n) := dns_candidates(h) if {
	n.type == "uri"
	h := uri_host(n.value)
}

# A URI without a host matches no name rule.
name_candidates(n) := set() if {
	n.type == "uri"
	not uri_host(n.value)
}

name_candidates(n) := {n.value} if not n.type in {"dns", "email", "uri", "ip"}

dns_candidates(name) := cs if {
	dots := indexof_n(name, ".")
	count(dots) > 0
	cs := {name, concat("", ["*", substring(name, dots[0], -1)])} | {substring(name, i, -1) | some i in dots}
} else := {name}

# email: "user@host" matches itself, "host" any mailbox at host, ".host"
# any mailbox at a host below host.
email_candidates(addr) := cs if {
	at := indexof(addr, "@")
	at > 0
	host := lower(substring(addr, at + 1, -1))
	cs := {addr, host} | {substring(host, i, -1) | some i in indexof_n(host, ".")}
} else := {addr}

# uri_host is the host of a URI with an authority part, lower case and
# without a trailing dot.
uri_host(uri) := h if {
	m := regex.find_all_string_submatch_n(`^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^:/?#]*)`, uri, 1)
	h := trim_suffix(lower(m[0][1]), ".")
	h != ""
}

# rule_sets[kind][side][type] holds the allow and deny rules of each layer
# as objects keyed by pattern. Lists (as written in data.json and account
# policies) are converted here; objects (what the policyca engine turns
# lists into when it loads a bundle) are used as they are, so that a
# decision costs lookups of the name's candidate patterns rather than a
# scan of every rule. The hot paths below are inline comprehensions rather
# than functions on purpose: OPA memoises function calls by their
# arguments, and comparing a large rule object on a cache probe costs as
# much as scanning it.
rule_sets := {kind: sides |
	some kind, l in layer
	sides := {side: sets |
		some side in ["allow", "deny"]
		rules := object.get(l, side, {})
		sets := object.union(
			{t: x | some t, x in rules; is_object(x)},
			{t: {p: true | some p in x} | some t, x in rules; is_array(x)},
		)
	}
}

# restricting layers have at least one allow rule.
restricting contains kind if {
	some kind, l in layer
	some list in l.allow
	count(list) > 0
}

# matched contains [kind, side, n, rule] for every rule of a layer that
# matches name n. object.filter looks the candidates up in the rules (it
# iterates the smaller of the two), so this costs a few lookups per name
# whatever the number of rules.
matched contains [kind, side, n, c] if {
	some kind, sides in rule_sets
	some side, sets in sides
	some n, cs in candidates
	some c, _ in object.filter(sets[n.type], cs)
}

matched contains [kind, side, n, r] if {
	some kind, sides in rule_sets
	some side, sets in sides
	some n in ip_names
	some r, _ in sets.ip
	ip_match(r, n.value)
}

matches := {[kind, side, n] | some [kind, side, n, _] in matched}

# IP rules are CIDRs or single addresses; a rule of the other address
# family never matches.
ip_match(r, ip) if {
	contains(r, "/")
	contains(r, ":") == contains(ip, ":")
	net.cidr_contains(r, ip)
}

ip_match(r, ip) if {
	not contains(r, "/")
	contains(r, ":") == contains(ip, ":")
	net.cidr_contains(concat("/", [r, host_bits(r)]), ip)
}

host_bits(a) := "128" if contains(a, ":")

host_bits(a) := "32" if not contains(a, ":")

# In a layer, deny wins: a denied name gets one violation naming the first
# deny rule that matches it.
violation contains v if {
	some [kind, "deny", n] in matches
	hits := {c | some [kind, "deny", n, c] in matched}
	v := {
		"type": n.type,
		"value": n.value,
		"layer": kind,
		"reason": sprintf("%s: denied by %s rule '%s'", [n.value, layer_label(kind), min(hits)]),
	}
}

# A layer with allow rules permits only names that match an allow rule of
# their own type; a layer without any permits what it does not deny.
violation contains v if {
	some kind in restricting
	some n in names
	not [kind, "deny", n] in matches
	not [kind, "allow", n] in matches
	v := {
		"type": n.type,
		"value": n.value,
		"layer": kind,
		"reason": sprintf("%s: not allowed by %s", [n.value, layer_label(kind)]),
	}
}

# Wildcard names are refused unless the authority sets
# allow_wildcard_names; a provisioner or account layer that sets it to
# false refuses them too (layers only ever narrow).
violation contains v if {
	some n in names
	wildcard(n)
	not data.policyca.authority.allow_wildcard_names == true
	v := {
		"type": n.type,
		"value": n.value,
		"layer": "authority",
		"reason": sprintf("%s: wildcard names are not allowed by authority", [n.value]),
	}
}

violation contains v if {
	some n in names
	wildcard(n)
	some kind, l in layer
	kind != "authority"
	l.allow_wildcard_names == false
	v := {
		"type": n.type,
		"value": n.value,
		"layer": kind,
		"reason": sprintf("%s: wildcard names are not allowed by %s", [n.value, layer_label(kind)]),
	}
}
