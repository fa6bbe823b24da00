package redis

import (
	"encoding/binary"
	"errors"

	"github.com/xmppd/xmppd/storage"
)

// An entry (a field's value in a pres:<bare> hash) is
//
//	owner: version (1) | uvarint len | node | uvarint len | incarnation
//	body:  flags | varint priority | presence (the rest)
//
// The owner part is the same for every entry a Registry writes, so a Lua
// script can tell its own entries by their first bytes without decoding
// them.
const valueVersion = 1

// Flags of an entry.
const (
	flagAvailable = 1 << iota
	flagPresence  // Presence is not nil (it may still be empty)
)

var errBadValue = errors.New("malformed registry entry")

// ownerPrefix returns the owner part of the entries of node's incarnation.
func ownerPrefix(node, incarnation string) []byte {
	b := []byte{valueVersion}
	b = binary.AppendUvarint(b, uint64(len(node)))
	b = append(b, node...)
	b = binary.AppendUvarint(b, uint64(len(incarnation)))
	return append(b, incarnation...)
}

// encodeValue appends r's body to owner.
func encodeValue(owner []byte, r storage.Resource) []byte {
	b := make([]byte, 0, len(owner)+1+binary.MaxVarintLen64+len(r.Presence))
	b = append(b, owner...)
	var flags byte
	if r.Available {
		flags |= flagAvailable
	}
	if r.Presence != nil {
		flags |= flagPresence
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, int64(r.Priority))
	return append(b, r.Presence...)
}

// decodeValue parses an entry; r.Resource is left empty (it is the field).
func decodeValue(v []byte) (r storage.Resource, incarnation string, err error) {
	if len(v) == 0 || v[0] != valueVersion {
		return r, "", errBadValue
	}
	v = v[1:]
	node, v, ok := decodeString(v)
	if !ok {
		return r, "", errBadValue
	}
	incarnation, v, ok = decodeString(v)
	if !ok || len(v) == 0 {
		return r, "", errBadValue
	}
	flags := v[0]
	prio, n := binary.Varint(v[1:])
	if n <= 0 || int64(int(prio)) != prio {
		return r, "", errBadValue
	}
	v = v[1+n:]
	r.Node = node
	r.Available = flags&flagAvailable != 0
	r.Priority = int(prio)
	if flags&flagPresence != 0 {
		r.Presence = append([]byte{}, v...)
	} else if len(v) != 0 {
		return storage.Resource{}, "", errBadValue
	}
	return r, incarnation, nil
}

func decodeString(v []byte) (s string, rest []byte, ok bool) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		return "", nil, false
	}
	return string(v[k : k+int(n)]), v[k+int(n):], true
}
