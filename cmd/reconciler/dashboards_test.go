package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const (
	grafanaDashboard = "../../examples/grafana/reconciler.json"
	prometheusAlerts = "../../examples/prometheus/alerts.yml"
)

// promExpr is one PromQL expression of an example file and where it is.
type promExpr struct {
	where, expr string
}

// TestDashboardsUseExportedMetrics parses every PromQL expression of the
// Grafana dashboard and the alert rules, then drives a real daemon and
// agent until every kind of series exists (a verified certificate, a
// policy denial) and checks that each metric the expressions use is in a
// scrape: the daemon's /metrics, or the agent's metricsAddress.
func TestDashboardsUseExportedMetrics(t *testing.T) {
	sources := []struct {
		name string
		load func(t *testing.T) []promExpr
	}{
		{"grafana dashboard", dashboardExprs},
		{"prometheus alert rules", alertExprs},
	}
	type use struct{ where, metric string }
	used := map[string][]use{} // by source name
	for _, src := range sources {
		exprs := src.load(t)
		if len(exprs) == 0 {
			t.Fatalf("%s: no PromQL expression found", src.name)
		}
		for _, e := range exprs {
			names, err := seriesNames(e.expr)
			if err != nil {
				t.Errorf("%s: %s: %v", src.name, e.where, err)
				continue
			}
			if len(names) == 0 {
				t.Errorf("%s: %s: %q selects no metric", src.name, e.where, e.expr)
			}
			for _, n := range names {
				used[src.name] = append(used[src.name], use{e.where, n})
			}
		}
	}
	if t.Failed() {
		return
	}

	d := startDaemon(t)
	// A second instance, which a policy denies: reconciler_policy_violations
	// has series only while a rule denies something.
	os.Mkdir(filepath.Join(d.dir, "fleet", "policies"), 0o755)
	write(t, filepath.Join(d.dir, "fleet", "policies", "owner.rego"), `package main

deny_unowned contains msg if {
	input.metadata.name == "denied-db"
	msg := "denied-db: no owner"
}
`)
	write(t, filepath.Join(d.dir, "fleet", "instances", "denied.yaml"), `apiVersion: reconciler/v1
kind: Instance
metadata:
  name: denied-db
spec:
  datastore: {type: postgresql, version: "16"}
  hosts: [127.0.0.2]
  ssl: enabled
`)
	a := startAgent(t, d)
	waitPhase(t, d, "search-db", "RestartRequired")
	a.serveDatastore(t)
	waitPhase(t, d, "search-db", "Active")
	waitPhase(t, d, "denied-db", "Denied")

	_, daemonMetrics := d.get(t, "/metrics", "")
	families := scrape(t, "the daemon", strings.NewReader(daemonMetrics))
	resp, err := http.Get(a.metrics)
	if err != nil {
		t.Fatalf("scrape the agent: %v", err)
	}
	defer resp.Body.Close()
	maps.Copy(families, scrape(t, "the agent", resp.Body))
	for _, want := range []string{`reconciler_encryption_coverage_ratio{datastore="manticore"} 1`,
		`reconciler_certificate_expiry_timestamp_seconds{instance="search-db"}`, `reconciler_policy_violations{policy="main.deny_unowned"} 1`} {
		if !strings.Contains(daemonMetrics, want) {
			t.Errorf("the daemon's metrics lack %s", want)
		}
	}

	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			for _, u := range used[src.name] {
				if _, ok := family(u.metric, families); !ok {
					t.Errorf("%s uses %s, which neither the daemon nor the agent exports", u.where, u.metric)
				}
			}
		})
	}
}

// TestDashboardMetricNames covers how metric names are found in an
// expression and matched to the families of a scrape.
func TestDashboardMetricNames(t *testing.T) {
	families := map[string]dto.MetricType{
		"reconciler_instances":                  dto.MetricType_GAUGE,
		"reconciler_commit_to_verified_seconds": dto.MetricType_HISTOGRAM,
		"reconciler_rpc_messages_total":         dto.MetricType_COUNTER,
		"go_gc_duration_seconds":                dto.MetricType_SUMMARY,
	}
	for _, tc := range []struct {
		name, expr string
		want       []string // families, "!name" for a name no family exports
		err        string
	}{
		{name: "a selector names its metric", expr: `sum by (datastore) (reconciler_instances{ssl="enabled"})`,
			want: []string{"reconciler_instances"}},
		{name: "both sides of a binary expression count", expr: `time() - reconciler_instances > 5 * 60 or reconciler_rpc_messages_total`,
			want: []string{"reconciler_instances", "reconciler_rpc_messages_total"}},
		{name: "buckets of a histogram name the histogram", expr: `histogram_quantile(0.95, sum by (le) (rate(reconciler_commit_to_verified_seconds_bucket[5m])))`,
			want: []string{"reconciler_commit_to_verified_seconds"}},
		{name: "count and sum of a summary name the summary", expr: `go_gc_duration_seconds_sum / go_gc_duration_seconds_count`,
			want: []string{"go_gc_duration_seconds"}},
		{name: "a __name__ matcher names its metric", expr: `{__name__="reconciler_instances"}`,
			want: []string{"reconciler_instances"}},
		{name: "a misspelt metric is not exported", expr: `reconciler_instance{ssl="enabled"}`,
			want: []string{"!reconciler_instance"}},
		{name: "buckets of a counter are not a histogram", expr: `reconciler_rpc_messages_bucket`,
			want: []string{"!reconciler_rpc_messages_bucket"}},
		{name: "a regexp on __name__ is refused", expr: `{__name__=~"reconciler_.+"}`,
			err: "cannot be checked"},
		{name: "a syntax error is reported", expr: `sum by (datastore (reconciler_instances)`,
			err: "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := seriesNames(tc.expr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("seriesNames(%q) = %v, %v; want an error with %q", tc.expr, names, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range names {
				if f, ok := family(n, families); ok {
					got = append(got, f)
				} else {
					got = append(got, "!"+n)
				}
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("families of %q (-want +got):\n%s", tc.expr, diff)
			}
		})
	}
}

// TestDashboardVariables covers the Grafana template syntax the dashboard
// expressions may use.
func TestDashboardVariables(t *testing.T) {
	vars := map[string]bool{"datastore": true}
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{name: "interval macros become a duration", in: `rate(x[$__rate_interval]) + rate(x[${__interval}])`, want: `rate(x[5m]) + rate(x[5m])`},
		{name: "a dashboard variable matches anything", in: `x{datastore=~"$datastore"} or x{datastore=~"${datastore:regex}"}`, want: `x{datastore=~".*"} or x{datastore=~".*"}`},
		{name: "an unknown variable is an error", in: `x{datastore=~"$datastores"}`, err: "$datastores"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := expandVariables(tc.in, vars)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("expandVariables(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// grafanaPanel is the part of a Grafana panel that holds queries; rows
// hold their panels when collapsed.
type grafanaPanel struct {
	Title   string
	Type    string
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	}
	Panels []grafanaPanel
}

// dashboardExprs returns the dashboard's panel targets and the PromQL of
// its query variables, with the variables expanded.
func dashboardExprs(t *testing.T) []promExpr {
	t.Helper()
	raw, err := os.ReadFile(grafanaDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []grafanaPanel
		Templating struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("decode %s: %v", grafanaDashboard, err)
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	var exprs []promExpr
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := "variable " + v.Name
		query, err := variableQuery(v.Query)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if query == "" {
			continue
		}
		e, err := expandVariables(query, vars)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		exprs = append(exprs, promExpr{where, e})
	}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				where := fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)
				if tg.Expr == "" {
					t.Errorf("%s has no expr", where)
					continue
				}
				e, err := expandVariables(tg.Expr, vars)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				exprs = append(exprs, promExpr{where, e})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return exprs
}

var (
	labelValuesOfMetric = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]\w*\)$`)
	labelValuesOnly     = regexp.MustCompile(`^label_values\(\s*[a-zA-Z_]\w*\s*\)$`)
	queryResult         = regexp.MustCompile(`^query_result\((.+)\)$`)
)

// variableQuery returns the PromQL inside a Prometheus query variable:
// the selector of label_values(metric, label) or the expression of
// query_result(expr); "" for label_values(label), which names no metric.
// The query is a string in old dashboards and {"query": ...} in new ones.
func variableQuery(raw json.RawMessage) (string, error) {
	var q string
	if err := json.Unmarshal(raw, &q); err != nil {
		var obj struct{ Query string }
		if err := json.Unmarshal(raw, &obj); err != nil {
			return "", fmt.Errorf("decode variable query %s: %w", raw, err)
		}
		q = obj.Query
	}
	q = strings.TrimSpace(q)
	switch {
	case labelValuesOfMetric.MatchString(q):
		return labelValuesOfMetric.FindStringSubmatch(q)[1], nil
	case labelValuesOnly.MatchString(q):
		return "", nil
	case queryResult.MatchString(q):
		return queryResult.FindStringSubmatch(q)[1], nil
	}
	return "", fmt.Errorf("variable query %q is not label_values or query_result", q)
}

var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// expandVariables replaces Grafana's interval macros with a duration and
// the dashboard's own variables with a regexp that matches anything, so
// that the result parses as PromQL. Any other variable is an error: a
// misspelt one would silently match nothing in Grafana.
func expandVariables(expr string, vars map[string]bool) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		switch {
		case name == "__rate_interval" || name == "__interval" || name == "__range":
			return "5m"
		case vars[name]:
			return ".*"
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("expand %q: no variable %s in the dashboard", expr, strings.Join(unknown, ", "))
	}
	return out, nil
}

// alertExprs returns the expr of every rule in the alert rules file.
func alertExprs(t *testing.T) []promExpr {
	t.Helper()
	raw, err := os.ReadFile(prometheusAlerts)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct{ Alert, Record, Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("decode %s: %v", prometheusAlerts, err)
	}
	var exprs []promExpr
	for _, g := range rules.Groups {
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d (%s%s)", g.Name, i+1, r.Alert, r.Record)
			if r.Expr == "" {
				t.Errorf("%s has no expr", where)
				continue
			}
			exprs = append(exprs, promExpr{where, r.Expr})
		}
	}
	return exprs
}

var promql = parser.NewParser(parser.Options{})

// seriesNames parses expr and returns the metric names its selectors
// select, sorted and once each. A selector without a fixed name (a regexp
// on __name__) is an error: nothing could check what it matches.
func seriesNames(expr string) ([]string, error) {
	root, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	var bad error
	parser.Inspect(root, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel {
				continue
			}
			if m.Type != labels.MatchEqual {
				bad = fmt.Errorf("selector %s in %q: a metric name matched by %s cannot be checked", vs, expr, m.Type)
			}
			name = m.Value
		}
		names = append(names, name)
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// family returns the family of a scrape that exports the series name: the
// family of that name, or for name_bucket the histogram name, for name_sum
// and name_count the histogram or summary name.
func family(name string, families map[string]dto.MetricType) (string, bool) {
	if _, ok := families[name]; ok {
		return name, true
	}
	for suffix, types := range map[string][]dto.MetricType{
		"_bucket": {dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM},
		"_sum":    {dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM, dto.MetricType_SUMMARY},
		"_count":  {dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM, dto.MetricType_SUMMARY},
	} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if typ, ok := families[base]; ok && slices.Contains(types, typ) {
			return base, true
		}
	}
	return "", false
}

// scrape parses the text exposition of who into the types of its
// families that have at least one series.
func scrape(t *testing.T, who string, r io.Reader) map[string]dto.MetricType {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse the metrics of %s: %v", who, err)
	}
	families := map[string]dto.MetricType{}
	for name, mf := range mfs {
		if len(mf.GetMetric()) > 0 {
			families[name] = mf.GetType()
		}
	}
	return families
}

// waitPhase waits until the daemon's API shows the instance in phase.
func waitPhase(t *testing.T, d *daemon, instance, phase string) {
	t.Helper()
	waitFor(t, instance+" to be "+phase, func() bool {
		_, body := d.get(t, "/v1/instances/"+instance, d.viewer)
		var r struct{ Instance struct{ Phase string } }
		json.Unmarshal([]byte(body), &r)
		return r.Instance.Phase == phase
	})
}
