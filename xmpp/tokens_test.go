package xmpp

import "testing"

func TestTokenShaped(t *testing.T) {
	for _, tc := range []struct {
		password string
		want     bool
	}{
		// {"alg":"HS256","typ":"JWT"} . {"sub":"a"} . a signature
		{"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2ln", true},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.x", true},
		{"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.", false}, // unsigned
		{"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0", false},
		{"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2ln.c2ln", false},
		{"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2l=", false},
		{"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ zdWIiOiJhIn0.c2ln", false},
		{"my.pass.word", false}, // "my" is not a JSON object
		{"correct horse battery staple", false},
		{"..", false},
		{"", false},
	} {
		if got := tokenShaped(tc.password); got != tc.want {
			t.Errorf("tokenShaped(%q) = %v, want %v", tc.password, got, tc.want)
		}
	}
}
