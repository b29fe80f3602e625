package ra_test

import (
	"testing"

	"github.com/go-acme/lego/v4/certificate"
)

// An issuance relayed by an RA is signed by the CA and counted there like
// one made through the CA's own ACME front end: issuances, and the store
// operations of the relay.
func TestRAIssuanceCountedOnTheCA(t *testing.T) {
	e := newEnv(t, nil)
	// Enrolment signs the RA's own certificate, which counts too: the
	// relayed issuance is the difference.
	r := e.enrolRA("counted", "acme")
	issued0, stored0 := caCounts(t, e)
	c := e.lego(r.base+"/acme/acme/directory", "", "")
	if _, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"x.counted.internal"}, Bundle: true}); err != nil {
		t.Fatal(err)
	}
	issued, stored := caCounts(t, e)
	if issued-issued0 != 1 {
		t.Errorf("policyca_issuances_total rose by %v for one RA-relayed issuance, want 1", issued-issued0)
	}
	if stored-stored0 != 1 {
		t.Errorf("put_certificate counted %v times for it, want 1", stored-stored0)
	}
}

// caCounts reads the CA's issuance counter and its count of stored
// certificates.
func caCounts(t *testing.T, e *env) (issued, storeOps float64) {
	t.Helper()
	mfs, err := e.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "policyca_issuances_total":
				issued += m.GetCounter().GetValue()
			case "policyca_store_operation_duration_seconds":
				for _, l := range m.GetLabel() {
					if l.GetName() == "op" && l.GetValue() == "put_certificate" {
						storeOps += float64(m.GetHistogram().GetSampleCount())
					}
				}
			}
		}
	}
	return issued, storeOps
}
