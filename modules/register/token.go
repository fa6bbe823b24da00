package register

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// NewToken makes an invitation: the token to hand to the invitee, and the
// hash that storage keeps in its place, so that a copy of the database
// holds no usable invitation.
func NewToken() (token string, hash []byte) {
	b := make([]byte, 18)
	rand.Read(b) // never fails (crypto/rand)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is what storage keeps of an invitation token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
