# Certificates for IP addresses may not be valid for more than 7 days:
# addresses get reassigned, names rarely. The lifetime is the one the
# client asked for or, when it asked for none, the lifetime the policy
# grants (data.policyca.lifetime, from the default bundle).
package policyca

max_ip_lifetime := "168h"

requested_or_granted := input.csr.requested_lifetime if is_string(input.csr.requested_lifetime)

requested_or_granted := data.policyca.lifetime if not is_string(input.csr.requested_lifetime)

violation contains v if {
	some id in input.identifiers
	id.type == "ip"
	lt := requested_or_granted
	time.parse_duration_ns(lt) > time.parse_duration_ns(max_ip_lifetime)
	v := {
		"type": "ip",
		"value": id.value,
		"layer": "custom",
		"reason": sprintf("%s: certificates for IP addresses may be valid for at most %s (asked for %s)", [id.value, max_ip_lifetime, lt]),
	}
}
