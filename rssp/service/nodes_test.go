package service_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestFactorChecksAcrossNodes: two services over one store (two nodes).
// 20 parallel wrong PINs split over both check exactly the limit (3) of
// them, the rest find the credential locked: the serialisation of factor
// checks is the store's, not a process's. A TOTP code accepted by one node
// is refused by the other.
func TestFactorChecksAcrossNodes(t *testing.T) {
	f := newFixture(t) // PINRetries 3
	nodes := []*service.Service{f.Service, f.Node(t)}
	id, _ := f.credential(t, nil)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = nodes[i%2].Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
				AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: "000000"}}})
		}()
	}
	wg.Wait()
	checked, refused := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, service.ErrInvalidPIN), errors.Is(err, service.ErrLocked) && strings.Contains(err.Error(), "Wrong PIN"):
			checked++
		case errors.Is(err, service.ErrLocked):
			refused++
		default:
			t.Errorf("Authorize: %v", err)
		}
	}
	if checked != 3 || refused != n-3 {
		t.Errorf("%d wrong PINs checked, %d refused as locked; want 3 and %d", checked, refused, n-3)
	}
	if c := f.Credential(t, id); c.PINFailures != 3 || !c.Locked {
		t.Errorf("credential: %d failures, locked %v", c.PINFailures, c.Locked)
	}

	otpID, uri := f.credential(t, func(s *service.CredentialSpec) { s.PIN = ""; s.OTP = "totp" })
	code := totpAt(t, uri, f.Clock.Now())
	auth := func(node *service.Service) error {
		_, err := node.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: otpID, NumSignatures: 1,
			AuthData: []csc.AuthData{{ID: service.FactorOTP, Value: code}}})
		return err
	}
	if err := auth(nodes[0]); err != nil {
		t.Fatalf("TOTP code on node A: %v", err)
	}
	if err := auth(nodes[1]); !errors.Is(err, service.ErrInvalidOTP) {
		t.Errorf("the same TOTP code on node B: %v, want it refused", err)
	}
}

// TestThrottleAcrossNodes: the throttles of wrong passwords are the
// store's, so two nodes share one budget: the burst of wrong passwords on
// an account, alternated between the nodes, throttles the account on both
// (with a throttle in each process's memory, each node allowed a whole
// burst). Likewise for an address guessing at many accounts. The bucket
// refills: the owner logs in again one interval later.
func TestThrottleAcrossNodes(t *testing.T) {
	f := newFixture(t)
	nodes := []*service.Service{f.Service, f.Node(t)}
	login := func(i int, addr, name, pw string) error {
		_, err := nodes[i%2].Login(service.WithClientAddr(t.Context(), addr), name, pw, false)
		return err
	}
	acct := service.DefaultAccountRate
	for i := range acct.Burst {
		if err := login(i, "192.0.2.1", "alice", "wrong"); !errors.Is(err, service.ErrAuthentication) {
			t.Fatalf("wrong password %d: %v, want ErrAuthentication", i+1, err)
		}
	}
	for i := range 2 {
		err := login(i, "192.0.2.2", "alice", password)
		if !errors.Is(err, service.ErrThrottled) {
			t.Errorf("the right password on node %d after %d wrong ones: %v, want ErrThrottled", i, acct.Burst, err)
		} else if d := service.RetryAfter(err); d <= 0 || d > acct.Every {
			t.Errorf("Retry-After %v, want (0, %v]", d, acct.Every)
		}
	}
	f.Clock.Advance(acct.Every)
	if err := login(1, "192.0.2.2", "alice", password); err != nil {
		t.Errorf("after the refill, on node B: %v", err)
	}

	addr := service.DefaultAddressRate
	for i := range addr.Burst {
		if err := login(i, "198.51.100.7", fmt.Sprintf("user%d", i), "guess"); !errors.Is(err, service.ErrAuthentication) {
			t.Fatalf("guess %d from one address: %v, want ErrAuthentication", i+1, err)
		}
	}
	for i := range 2 {
		if err := login(i, "198.51.100.7", "bob", password); !errors.Is(err, service.ErrThrottled) {
			t.Errorf("bob from the guessing address on node %d: %v, want ErrThrottled", i, err)
		}
	}
	if err := login(0, "203.0.113.1", "bob", password); err != nil {
		t.Errorf("bob from another address: %v", err)
	}
}
