package policyca

# Name rules of the authority, provisioner and account layers.
#
# The rules of one type may be a list of patterns (as written in data.json
# and account policies), a set, or an object whose keys are the patterns.
# The policyca engine turns every list into a set when it loads a bundle or
# an account policy, and passes each name's candidate patterns in the input
# (input.candidates, also sets), so that matching a name against a layer is
# one set intersection: its cost grows with the labels of the name, not with
# the number of rules. Without input.candidates (opa eval, opa test) the
# same candidates are computed here; policy/candidates.go must agree with
# this file, and a Go test compares the two.
#
# Every function below takes small arguments (strings, a name) on purpose:
# OPA memoises function calls by argument, and comparing a large rule set on
# a cache probe would cost as much as a scan.

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

wildcard(n) if {
	n.type == "dns"
	startswith(n.value, "*.")
}

# candidates[n] is the set of patterns that would match the name n. For a
# DNS name a.b.c they are the name itself, "*.b.c" (one more label below
# b.c) and ".b.c", ".c" (any depth below each proper ancestor): never
# ".a.b.c", which matches only names below a.b.c. For an IP address (only
# when the engine provides them) they are the address and its masked
# prefixes of every length, in canonical form ("10.1.2.3", "10.1.2.3/32",
# "10.1.2.2/31" … "0.0.0.0/0"). An IP address without them is matched by
# scanning the rules (ip_scan below).
candidates[n] := cs if {
	some n in names
	cs := name_candidates(n)
}

name_candidates(n) := cs if {
	cs := input.candidates[n.type][n.value]
	is_set(cs)
} else := computed_candidates(n)

computed_candidates(n) := dns_candidates(n.value) if n.type == "dns"

computed_candidates(n) := email_candidates(n.value) if n.type == "email"

computed_candidates(n) := uri_candidates(n.value) if n.type == "uri"

computed_candidates(n) := {n.value} if not n.type in {"dns", "email", "uri", "ip"}

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

# A URI is matched by its host with the DNS rules; one without a host
# matches no name rule.
uri_candidates(uri) := dns_candidates(h) if {
	h := uri_host(uri)
} else := set()

# uri_host is the host of a URI with an authority part, lower case and
# without a trailing dot.
uri_host(uri) := h if {
	m := regex.find_all_string_submatch_n(`^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^:/?#]*)`, uri, 1)
	h := trim_suffix(lower(m[0][1]), ".")
	h != ""
}

# rule_set(kind, side, t) is the set of patterns of type t on the given
# side ("allow" or "deny") of a layer, whatever form they are written in;
# the empty set if there are none. (The engine stores every type of both
# sides as a set, so only the first body runs in production.)
rule_set(kind, side, t) := x if {
	x := layer[kind][side][t]
	is_set(x)
} else := {p | some p in layer[kind][side][t]} if {
	is_array(layer[kind][side][t])
} else := {p | some p, _ in layer[kind][side][t]} if {
	is_object(layer[kind][side][t])
} else := set()

# name_violations are the violations of the name rules: deny and allow
# rules, wildcard names.
#
# The policyca engine evaluates name_violations with a Go implementation of
# the rules below (policy/names.go) when the bundle's name rules are
# exactly the ones in this file, because evaluating them in Rego costs more
# than the rest of a decision. A test decides many requests both ways and
# compares; a bundle that changes any rule of this file (or defines more
# rules of the same names) is evaluated in Rego as written.
violation contains v if {
	some v in name_violations
}

# ip_scanned are the IP addresses without candidate patterns (the input
# does not provide them): each is matched by scanning the IP rules.
ip_scanned := {n | some n in names; n.type == "ip"; not candidates[n]}

ip_scan(kind, side, ip) := {r | some r in rule_set(kind, side, "ip"); ip_match(r, ip)}

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

# restricting layers have at least one allow rule.
restricting contains kind if {
	some kind, l in layer
	some list in l.allow
	count(list) > 0
}

# denied[kind][n] names the first (in sort order) deny rule of a layer that
# matches n. In a layer, deny wins. A match is the intersection of the
# layer's rules with the name's candidate patterns.
denied[kind][n] := min(hs) if {
	some kind, _ in layer
	some n, cs in candidates
	hs := rule_set(kind, "deny", n.type) & cs
	count(hs) > 0
}

denied[kind][n] := min(hs) if {
	some kind, _ in layer
	some n in ip_scanned
	hs := ip_scan(kind, "deny", n.value)
	count(hs) > 0
}

name_violations contains v if {
	some kind, ns in denied
	some n, rule in ns
	v := {
		"type": n.type,
		"value": n.value,
		"layer": kind,
		"reason": sprintf("%s: denied by %s rule '%s'", [n.value, layer_label(kind), rule]),
	}
}

# A layer with allow rules permits only names that match an allow rule of
# their own type; a layer without any permits what it does not deny.
name_violations contains not_allowed(kind, n) if {
	some kind in restricting
	some n, cs in candidates
	count(rule_set(kind, "allow", n.type) & cs) == 0
	not denied[kind][n]
}

name_violations contains not_allowed(kind, n) if {
	some kind in restricting
	some n in ip_scanned
	count(ip_scan(kind, "allow", n.value)) == 0
	not denied[kind][n]
}

not_allowed(kind, n) := {
	"type": n.type,
	"value": n.value,
	"layer": kind,
	"reason": sprintf("%s: not allowed by %s", [n.value, layer_label(kind)]),
}

# Wildcard names are refused unless the authority sets
# allow_wildcard_names; a provisioner or account layer that sets it to
# false refuses them too (layers only ever narrow).
name_violations contains v if {
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

name_violations contains v if {
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
