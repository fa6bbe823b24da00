package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// scram is the client side of one SCRAM exchange (RFC 5802, RFC 7677),
// without channel binding.
type scram struct {
	h         func() hash.Hash
	user      string
	password  string
	cache     *saltCache
	nonce     string
	bare      string // client-first-message-bare
	serverSig []byte
	verified  bool
}

// saltCache keeps SaltedPassword per password, salt and iteration count, as
// RFC 5802 §5.1 allows a client to, so that the load tool does not spend its
// own core on PBKDF2 once it has seen a salt: with SCRAM the cost it measures
// is the server's.
type saltCache struct {
	m     sync.Map
	iters atomic.Int64 // the last iteration count a server asked for
}

func (c *saltCache) iterations() int { return int(c.iters.Load()) }

func (c *saltCache) salted(h func() hash.Hash, password string, salt []byte, iter int) ([]byte, error) {
	c.iters.Store(int64(iter))
	key := strconv.Itoa(h().Size()) + "\x00" + password + "\x00" + string(salt) + "\x00" + strconv.Itoa(iter)
	if v, ok := c.m.Load(key); ok {
		return v.([]byte), nil
	}
	k, err := pbkdf2.Key(h, password, salt, iter, h().Size())
	if err != nil {
		return nil, err
	}
	c.m.Store(key, k)
	return k, nil
}

func newSCRAM(mech, user, password string, cache *saltCache) (*scram, error) {
	s := &scram{user: user, password: password, cache: cache}
	switch mech {
	case "SCRAM-SHA-1":
		s.h = sha1.New
	case "SCRAM-SHA-256":
		s.h = sha256.New
	default:
		return nil, fmt.Errorf("unsupported mechanism %q", mech)
	}
	var n [18]byte
	rand.Read(n[:])
	s.nonce = base64.RawStdEncoding.EncodeToString(n[:])
	return s, nil
}

// first is the client-first-message, with a GS2 header saying that the
// client does not support channel binding.
func (s *scram) first() []byte {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.bare = "n=" + name + ",r=" + s.nonce
	return []byte("n,," + s.bare)
}

// step answers the server-first-message with the client-final-message, and
// checks the server-final-message.
func (s *scram) step(challenge []byte) ([]byte, error) {
	if s.serverSig != nil {
		v, ok := bytes.CutPrefix(challenge, []byte("v="))
		if !ok {
			return nil, fmt.Errorf("SCRAM: server-final-message %q", challenge)
		}
		sig, err := base64.StdEncoding.DecodeString(string(v))
		if err != nil || subtle.ConstantTimeCompare(sig, s.serverSig) != 1 {
			return nil, errors.New("SCRAM: wrong server signature")
		}
		s.verified = true
		return nil, nil
	}
	var nonce, salt64, iters string
	for _, f := range strings.Split(string(challenge), ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			nonce = f[2:]
		case strings.HasPrefix(f, "s="):
			salt64 = f[2:]
		case strings.HasPrefix(f, "i="):
			iters = f[2:]
		}
	}
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
		return nil, fmt.Errorf("SCRAM: bad nonce in %q", challenge)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return nil, fmt.Errorf("SCRAM: salt: %w", err)
	}
	iter, err := strconv.Atoi(iters)
	if err != nil || iter < 1 {
		return nil, fmt.Errorf("SCRAM: iteration count %q", iters)
	}
	salted, err := s.cache.salted(s.h, s.password, salt, iter)
	if err != nil {
		return nil, err
	}
	final := "c=biws,r=" + nonce
	auth := []byte(s.bare + "," + string(challenge) + "," + final)
	clientKey := s.mac(salted, []byte("Client Key"))
	h := s.h()
	h.Write(clientKey)
	proof := s.mac(h.Sum(nil), auth)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	s.serverSig = s.mac(s.mac(salted, []byte("Server Key")), auth)
	return []byte(final + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (s *scram) mac(key, msg []byte) []byte {
	m := hmac.New(s.h, key)
	m.Write(msg)
	return m.Sum(nil)
}
