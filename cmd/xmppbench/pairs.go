package main

import (
	"errors"
	"fmt"
)

// The chat scenario's -pairs: who each client writes to. Client i connects
// to address i modulo n (config.addr), so with the nodes of a cluster as
// the addresses, the pairing decides how many messages cross between nodes:
// the cost the cluster benchmark (bench/cluster.sh) compares with a local
// delivery.
const (
	// pairsRandom: each message to a random other client, as the
	// single-server comparison has always sent. With n addresses and N
	// clients, N(n-1)/(n(N-1)) of the messages cross: about half with 2.
	pairsRandom = "random"
	// pairsCross: client 2j and client 2j+1 write to each other; they are
	// on consecutive addresses, so always on two different ones (n >= 2).
	pairsCross = "cross"
	// pairsLocal: in each block of 2n clients, the one at offset r writes
	// with the one at r+n, on the same address (they differ by n).
	pairsLocal = "local"
	// pairsHalf: the blocks of 2n clients are paired as cross and local in
	// turn, so that exactly half the pairs are across addresses when n >= 2
	// (with one address, every pair is on it).
	pairsHalf = "half"
)

// partners returns each client's fixed partner (an index in 0..clients-1)
// for the pairing mode, with clients connected to addrs addresses in turn;
// nil for random, which has none. Every client is in exactly one pair, so
// the counts must divide evenly; it says by what when they do not.
func partners(mode string, clients, addrs int) ([]int, error) {
	if addrs < 1 {
		return nil, errors.New("no address")
	}
	block := 2 * addrs
	switch mode {
	case pairsRandom:
		return nil, nil
	case pairsCross:
		if addrs < 2 {
			return nil, errors.New("cross needs at least two addresses in -addr")
		}
		if clients%2 != 0 {
			return nil, fmt.Errorf("cross needs an even number of clients, not %d", clients)
		}
	case pairsLocal:
		if clients%block != 0 {
			return nil, fmt.Errorf("local with %d addresses needs a multiple of %d clients, not %d", addrs, block, clients)
		}
	case pairsHalf:
		if clients%(2*block) != 0 {
			return nil, fmt.Errorf("half with %d addresses needs a multiple of %d clients, not %d", addrs, 2*block, clients)
		}
	default:
		return nil, fmt.Errorf("unknown pairing %q: want random, cross, local or half", mode)
	}
	p := make([]int, clients)
	for i := range p {
		b := i / block
		local := mode == pairsLocal || (mode == pairsHalf && b%2 == 1)
		switch {
		case local && i%block < addrs:
			p[i] = i + addrs
		case local:
			p[i] = i - addrs
		case i%2 == 0:
			p[i] = i + 1
		default:
			p[i] = i - 1
		}
	}
	return p, nil
}
