package main

import (
	"strings"
	"testing"
)

// A run with a pass, a skip, a failure and the package lines: the skip is
// listed with its reason at the end, the failure's output shows, and
// nothing of the passing test does.
func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:3: chatter\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"run","Package":"p","Test":"TestS"}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"=== RUN   TestS\n"}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"    s_test.go:9: prosody is missing; run scripts/test-deps.sh\n"}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"--- SKIP: TestS (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestS"}`,
		`{"Action":"run","Package":"p","Test":"TestF"}`,
		`{"Action":"output","Package":"p","Test":"TestF","Output":"=== RUN   TestF\n"}`,
		`{"Action":"output","Package":"p","Test":"TestF","Output":"    f_test.go:5: got 1, want 2\n"}`,
		`{"Action":"output","Package":"p","Test":"TestF","Output":"--- FAIL: TestF (0.00s)\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestF"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`# a build error, not JSON`,
	}, "\n")
	var out strings.Builder
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := "    f_test.go:5: got 1, want 2\n--- FAIL: TestF (0.00s)\nFAIL\nFAIL\tp\t0.01s\n# a build error, not JSON\n" +
		"\n1 tests skipped (with CI=true a missing tool or service fails its test instead):\n" +
		"  p TestS: prosody is missing; run scripts/test-deps.sh\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
