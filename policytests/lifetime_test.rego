# Lifetime: the provisioner's default, capped by every layer's max_lifetime.
package policyca_test

import data.policyca

lifetime_of(authority, provisioner, account) := x if {
	x := policyca.decision.lifetime with input as with_account([dns("a.internal")], account)
		with data.policyca.authority as authority
		with data.policyca.provisioners as {"dev": provisioner}
}

test_default_lifetime if {
	lifetime_of({}, {"default_lifetime": "24h"}, null) == "24h"
}

test_default_capped_by_authority if {
	lifetime_of({"max_lifetime": "12h"}, {"default_lifetime": "24h"}, null) == "12h"
}

test_default_below_caps if {
	lifetime_of({"max_lifetime": "2160h"}, {"default_lifetime": "24h", "max_lifetime": "720h"}, null) == "24h"
}

test_account_caps if {
	lifetime_of({"max_lifetime": "2160h"}, {"default_lifetime": "24h"}, {"max_lifetime": "90m"}) == "90m"
}

test_smallest_cap_without_default if {
	lifetime_of({"max_lifetime": "2160h"}, {"max_lifetime": "168h"}, null) == "168h"
}

test_no_lifetime_without_limits if {
	d := policyca.decision with input as order([dns("a.internal")])
		with data.policyca.authority as {}
		with data.policyca.provisioners as {"dev": {}}
	not "lifetime" in object.keys(d)
	d.allow
}
