package rsm_test

import (
	"errors"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/rsm"
)

func parse(t *testing.T, s string) *xmpp.Element {
	t.Helper()
	el, err := xmpp.ParseStanza([]byte(`<iq xmlns="jabber:client">` + s + `</iq>`))
	if err != nil {
		t.Fatal(err)
	}
	return el.Elements()[0]
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, set string
		want      rsm.Request
		err       bool
	}{
		{"max", `<max>10</max>`, rsm.Request{Max: 10, HasMax: true, Index: -1}, false},
		{"after", `<max>5</max><after> b </after>`, rsm.Request{Max: 5, HasMax: true, After: "b", HasAfter: true, Index: -1}, false},
		{"before", `<before>x</before>`, rsm.Request{Before: "x", HasBefore: true, Index: -1}, false},
		{"empty before is the last page", `<max>3</max><before/>`, rsm.Request{Max: 3, HasMax: true, HasBefore: true, Index: -1}, false},
		{"index", `<index>7</index>`, rsm.Request{Index: 7}, false},
		{"max zero counts", `<max>0</max>`, rsm.Request{HasMax: true, Index: -1}, false},
		{"negative max", `<max>-1</max>`, rsm.Request{}, true},
		{"max not a number", `<max>ten</max>`, rsm.Request{}, true},
		{"negative index", `<index>-2</index>`, rsm.Request{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, ok, err := rsm.Parse(parse(t, `<set xmlns="`+rsm.NS+`">`+c.set+`</set>`))
			if !ok {
				t.Fatal("a <set/> was not seen")
			}
			if c.err {
				if !errors.Is(err, rsm.ErrBadRequest) {
					t.Fatalf("err = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil || req != c.want {
				t.Fatalf("Parse = %+v, %v; want %+v", req, err, c.want)
			}
			if req.Last() != c.want.HasBefore {
				t.Errorf("Last() = %v", req.Last())
			}
		})
	}
	if _, ok, _ := rsm.Parse(nil); ok {
		t.Error("no element is a request")
	}
	if _, ok, _ := rsm.Parse(parse(t, `<set xmlns="other"/>`)); ok {
		t.Error("a <set/> of another namespace is a request")
	}
}

func TestResultElement(t *testing.T) {
	for _, c := range []struct {
		res  rsm.Result
		want string
	}{
		{rsm.Result{First: "a", Last: "c", Index: 0, Count: 5},
			`<set xmlns="` + rsm.NS + `"><first index="0">a</first><last>c</last><count>5</count></set>`},
		{rsm.Result{First: "a", Last: "c", Index: -1, Count: -1},
			`<set xmlns="` + rsm.NS + `"><first>a</first><last>c</last></set>`},
		{rsm.Result{Index: -1, Count: 5}, `<set xmlns="` + rsm.NS + `"><count>5</count></set>`},
		{rsm.Result{Index: -1, Count: -1}, `<set xmlns="` + rsm.NS + `"/>`},
	} {
		if got := c.res.Element().String(); got != c.want {
			t.Errorf("%+v: got %s, want %s", c.res, got, c.want)
		}
	}
}

func TestPage(t *testing.T) {
	keys := []string{"b", "d", "f", "h", "j"}
	key := func(i int) string { return keys[i] }
	for _, c := range []struct {
		name       string
		req        rsm.Request
		start, end int
	}{
		{"first page", rsm.Request{Max: 2, HasMax: true, Index: -1}, 0, 2},
		{"no max takes the limit", rsm.Request{Index: -1}, 0, 3},
		{"after an item", rsm.Request{Max: 2, HasMax: true, After: "d", HasAfter: true, Index: -1}, 2, 4},
		{"after a key between items", rsm.Request{Max: 2, HasMax: true, After: "e", HasAfter: true, Index: -1}, 2, 4},
		{"after the last", rsm.Request{Max: 2, HasMax: true, After: "j", HasAfter: true, Index: -1}, 5, 5},
		{"last page", rsm.Request{Max: 2, HasMax: true, HasBefore: true, Index: -1}, 3, 5},
		{"before an item", rsm.Request{Max: 2, HasMax: true, Before: "h", HasBefore: true, Index: -1}, 1, 3},
		{"before the first", rsm.Request{Max: 2, HasMax: true, Before: "b", HasBefore: true, Index: -1}, 0, 0},
		{"after and before", rsm.Request{Max: 9, HasMax: true, After: "b", HasAfter: true, Before: "h", HasBefore: true, Index: -1}, 1, 3},
		{"after past before", rsm.Request{Max: 9, HasMax: true, After: "h", HasAfter: true, Before: "d", HasBefore: true, Index: -1}, 4, 4},
		{"index", rsm.Request{Max: 2, HasMax: true, Index: 3}, 3, 5},
		{"index past the end", rsm.Request{Max: 2, HasMax: true, Index: 9}, 5, 5},
		{"max zero", rsm.Request{HasMax: true, Index: -1}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, e := rsm.Page(len(keys), key, c.req, 3)
			if s != c.start || e != c.end {
				t.Fatalf("Page = [%d,%d), want [%d,%d)", s, e, c.start, c.end)
			}
		})
	}
}
