package admin

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The document describes exactly the operations the handler serves: each
// route is a path and method in openapi.json, and each operation there is
// a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json is not OpenAPI 3: %q", doc.OpenAPI)
	}
	var served, documented []string
	for _, rt := range (&API{}).allRoutes() {
		served = append(served, strings.ToLower(rt.method)+" "+rt.path)
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			switch m {
			case "get", "put", "post", "delete", "patch":
				documented = append(documented, m+" "+p)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("served but not in openapi.json: %s", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("in openapi.json but not served: %s", d)
		}
	}
	if dup := slices.Compact(slices.Clone(served)); len(dup) != len(served) {
		t.Errorf("a route is declared twice: %v", served)
	}
}
