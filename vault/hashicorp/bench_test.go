package hashicorp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

// BenchmarkIssueOverhead issues certificates through the provider and
// through bare vault/api calls, interleaved in the same run against the
// same Vault, and reports the provider's overhead in percent (goal: < 10).
func BenchmarkIssueOverhead(b *testing.B) {
	s := vaultservertest.Dev(b)
	cfg := bootstrapped(b, s)
	c := newClient(b, cfg)
	bare := s.Client()
	bare.SetToken(c.api.Token()) // the same AppRole token: Vault's ACL checks cost the same
	ctx := context.Background()
	req := vaulttest.DefaultRequest()
	data := map[string]any{
		"common_name": req.Instance, "alt_names": req.Hosts[0], "ip_sans": req.Hosts[1],
		"ttl": req.TTL.String(), "private_key_format": "pkcs8", "exclude_cn_from_sans": true,
	}
	viaProvider := func() time.Duration {
		start := time.Now()
		if _, err := c.Issue(ctx, req); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	viaAPI := func() time.Duration {
		start := time.Now()
		secret, err := bare.Logical().WriteWithContext(ctx, "pki/issue/reconciler", data)
		if err != nil {
			b.Fatal(err)
		}
		if !strings.Contains(secret.Data["certificate"].(string), "BEGIN CERTIFICATE") {
			b.Fatal("no certificate")
		}
		return time.Since(start)
	}
	var provider, direct time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 { // alternate which goes first, so neither always meets a warm server
			provider += viaProvider()
			direct += viaAPI()
		} else {
			direct += viaAPI()
			provider += viaProvider()
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(provider.Nanoseconds())/n, "ns/provider-issue")
	b.ReportMetric(float64(direct.Nanoseconds())/n, "ns/bare-issue")
	b.ReportMetric(100*(float64(provider)/float64(direct)-1), "overhead-%")
}
