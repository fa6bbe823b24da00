package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// importUsers creates the accounts listed on stdin, one "JID PASSWORD" per
// line (the password is the rest of the line). The SCRAM keys are derived on
// every core; lines that fail are reported and the others still imported.
func importUsers(ctx context.Context, store storage.Store, domain string, iterations int, stdin io.Reader, stdout io.Writer) (int, error) {
	type account struct {
		line     int
		bare     string
		password string
		creds    storage.Credentials
		err      error
	}
	var accounts []*account
	sc := bufio.NewScanner(stdin)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		who, password, _ := strings.Cut(line, " ")
		a := &account{line: n, password: strings.TrimSpace(password)}
		a.bare, a.err = accountJID(who, domain)
		if a.err == nil && a.password == "" {
			a.err = fmt.Errorf("no password for %s", a.bare)
		}
		accounts = append(accounts, a)
	}
	if err := sc.Err(); err != nil {
		return 1, err
	}
	work := make(chan *account)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				a.creds, a.err = xmpp.NewCredentials(a.password, iterations)
			}
		}()
	}
	for _, a := range accounts {
		if a.err == nil {
			work <- a
		}
	}
	close(work)
	wg.Wait()
	created, failed := 0, 0
	for _, a := range accounts {
		if a.err == nil {
			a.err = explain(store.CreateUser(ctx, a.bare, a.creds), a.bare)
		}
		if a.err != nil {
			failed++
			fmt.Fprintf(stdout, "line %d: %v\n", a.line, a.err)
			continue
		}
		created++
	}
	fmt.Fprintf(stdout, "created %d accounts\n", created)
	if failed > 0 {
		return 1, fmt.Errorf("%d of %d lines failed", failed, len(accounts))
	}
	return 0, nil
}
