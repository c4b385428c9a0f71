package specs

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestFleetFind(t *testing.T) {
	doc := func(name string) string { return strings.Replace(valid, "orders-db", name, 1) }
	fsys := fstest.MapFS{
		"instances/orders.yaml":   {Data: []byte(doc("orders-db") + "---\n" + doc("orders-db-staging"))},
		"instances/payments.yaml": {Data: []byte(doc("payments-db"))},
		"instances/twice.yaml":    {Data: []byte(doc("payments-db"))},
		"instances/broken.yaml":   {Data: []byte("kind: [\n")},
	}
	fleet, err := Load(t.Context(), fsys, "instances")
	if err != nil {
		t.Fatal(err)
	}
	if in, err := fleet.Find("orders-db-staging"); err != nil || in.Metadata.Name != "orders-db-staging" {
		t.Errorf("Find(orders-db-staging) = %v, %v", in, err)
	}
	tests := []struct {
		name        string
		wantSimilar []string
	}{
		{"orders-bd", []string{"orders-db"}},
		{"orders", []string{"orders-db", "orders-db-staging"}},
		{"ledger-db", nil},
	}
	for _, tt := range tests {
		_, err := fleet.Find(tt.name)
		var nf *NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("Find(%s): error %v is not a NotFoundError", tt.name, err)
		}
		if diff := cmp.Diff(tt.wantSimilar, nf.Similar); diff != "" {
			t.Errorf("Find(%s): similar names (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff([]string{"instances/broken.yaml"}, nf.Broken); diff != "" {
			t.Errorf("Find(%s): broken files (-want +got):\n%s", tt.name, diff)
		}
	}
	_, err = fleet.Find("orders-bd")
	if want := `no instance named "orders-bd" in the fleet; did you mean "orders-db"? (instances/broken.yaml could not be read, so the instances there are unknown: fix the errors first)`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	_, err = fleet.Find("payments-db")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.Contains(list[0].Error(), `instances/twice.yaml:1: metadata.name: instance "payments-db" is also defined in instances/payments.yaml:1`) {
		t.Errorf("Find(payments-db), defined twice: error %v", err)
	}
}
