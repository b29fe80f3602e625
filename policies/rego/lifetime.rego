package policyca

# The certificate lifetime is the provisioner's default_lifetime, capped by
# every layer's max_lifetime; with no default it is the smallest cap. The
# CA never issues longer than this (it may issue shorter, e.g. when the
# client asks for less). Durations use Go syntax ("24h", "90m").

lifetime_limits contains [time.parse_duration_ns(d), d] if d := layer.provisioner.default_lifetime

lifetime_limits contains [time.parse_duration_ns(d), d] if {
	some rules in layer
	d := rules.max_lifetime
}

lifetime := min(lifetime_limits)[1]
