package xmpp

import (
	"context"
	"strings"
	"testing"
)

// Hooks run by priority, highest first, in registration order among equals,
// and one that handles a stanza stops those after it.
func TestHookOrder(t *testing.T) {
	var s Server
	var got []string
	add := func(prio int, name string, handle bool) {
		s.Hook(MessageIn, prio, func(context.Context, *StanzaEvent) bool {
			got = append(got, name)
			return handle
		})
	}
	add(0, "zero-a", false)
	add(10, "ten", false)
	add(0, "zero-b", false)
	add(-5, "minus", true)
	add(-10, "never", false)
	add(5, "five", false)
	if handled := s.hooks.runStanza(context.Background(), MessageIn, &StanzaEvent{}); !handled {
		t.Fatal("a hook handled the stanza but the run says it did not")
	}
	if want := "ten five zero-a zero-b minus"; strings.Join(got, " ") != want {
		t.Fatalf("ran %q, want %q", strings.Join(got, " "), want)
	}
	if s.hooks.has(Deliver) || !s.hooks.has(MessageIn) {
		t.Fatal("has is wrong")
	}
}

// A second handler for the same IQ or element is a programming error.
func TestDuplicateHandlersPanic(t *testing.T) {
	var s Server
	h := func(context.Context, *IQ) (*Element, error) { return nil, nil }
	s.HandleIQ(ToServer, "get", "urn:example", "q", h)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a second IQ handler was accepted")
			}
		}()
		s.HandleIQ(ToServer, "get", "urn:example", "q", h)
	}()
	e := func(context.Context, *Session, *Element) error { return nil }
	s.HandleElement("urn:example", "e", e)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a second element handler was accepted")
			}
		}()
		s.HandleElement("urn:example", "e", e)
	}()
}
