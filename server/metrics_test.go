package server

import (
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/metrics"
)

func TestMetricsAfterIssuanceAndRefusal(t *testing.T) {
	port := testutil.FreePort(t)
	tc := startCA(t, func(c *config.Config) {
		c.Metrics = &config.Metrics{Listen: "127.0.0.1:" + strconv.Itoa(port), Pprof: true}
	})
	c, _ := tc.legoClient(t)
	tc.useHTTP01(t, c)
	obtain(t, c, "metrics.internal")
	if _, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"www.example.com"}}); err == nil {
		t.Fatal("public name issued")
	}

	body := scrape(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics")
	for _, want := range []string{
		`policyca_issuances_total{provisioner="acme"} 1`,
		`policyca_refusals_total{provisioner="acme",reason="policy",stage="order"} 1`,
		`policyca_policy_evaluation_duration_seconds_count{result="allow",stage="order"} 1`,
		`policyca_policy_evaluation_duration_seconds_count{result="deny",stage="order"} 1`,
		`policyca_policy_evaluation_duration_seconds_count{result="allow",stage="sign"} 1`,
		`policyca_validation_duration_seconds_count{result="valid",type="http-01"} 1`,
		`policyca_sign_duration_seconds_count{backend="soft",result="ok"}`,
		`policyca_store_operation_duration_seconds_count{op="complete_order",result="ok"} 1`,
		// Decision log writes: the allowed and the refused order, the signature.
		`policyca_store_operation_duration_seconds_count{op="record_decisions",result="ok"} 3`,
		`policyca_http_requests_total{code="201",endpoint="acme_new_order"} 1`,
		`policyca_http_requests_total{code="400",endpoint="acme_new_order"} 1`,
		`policyca_http_request_duration_seconds_count{endpoint="acme_finalize"}`,
		`policyca_policy_bundle_info{name_rules="go",revision="`,
		`policyca_policy_bundle_load_failures_total 0`,
		`policyca_signer_healthy 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
	if !strings.Contains(scrape(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/debug/pprof/"), "goroutine") {
		t.Error("pprof index not served")
	}
	// The mutex profiler is on with pprof (its profile is empty otherwise).
	if got := runtime.SetMutexProfileFraction(-1); got != metrics.MutexProfileFraction {
		t.Errorf("mutex profile fraction %d, want %d", got, metrics.MutexProfileFraction)
	}
	if !strings.Contains(scrape(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/debug/pprof/mutex?debug=1"), "cycles/second") {
		t.Error("mutex profile not served")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	return string(b)
}

func TestEndpointOf(t *testing.T) {
	for path, want := range map[string]string{
		"/acme/acme/directory":       "acme_directory",
		"/acme/x/new-order":          "acme_new_order",
		"/acme/x/order/abc/finalize": "acme_finalize",
		"/acme/x/order/abc":          "acme_order",
		"/acme/x/account/abc/orders": "acme_orders",
		"/acme/x/chall/a/b":          "acme_chall",
		"/acme/x/whatever":           "acme_other",
		"/admin/v1/eab":              "admin",
		"/healthz":                   "healthz",
		"/roots.pem":                 "roots",
		"/nope":                      "other",
	} {
		if got := endpointOf(path); got != want {
			t.Errorf("endpointOf(%q) = %q, want %q", path, got, want)
		}
	}
}
