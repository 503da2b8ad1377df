package authserver_test

import (
	"testing"

	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestThrottle: wrong client secrets and wrong passwords at the login page
// are throttled per account (issue 12, item 2): after the burst even the
// right one is refused with ErrThrottled and a wait, until the bucket
// refills; then it works again (no permanent lockout).
func TestThrottle(t *testing.T) {
	f := newFixture(t)
	rate := service.DefaultAccountRate
	for range rate.Burst {
		_, err := f.as.AuthenticateClient(t.Context(), "portal", "wrong secret")
		want(t, err, authserver.ErrInvalidClient, "authentication failed")
	}
	_, err := f.as.AuthenticateClient(t.Context(), "portal", f.portalSecret)
	want(t, err, service.ErrThrottled, "Too many failed attempts")
	if d := service.RetryAfter(err); d <= 0 || d > rate.Every {
		t.Errorf("RetryAfter %v, want (0, %v]", d, rate.Every)
	}
	// Another client is not concerned.
	_, err = f.as.AuthenticateClient(t.Context(), "desktop", "")
	want(t, err, nil, "")
	f.Clock.Advance(rate.Every)
	_, err = f.as.AuthenticateClient(t.Context(), "portal", f.portalSecret)
	want(t, err, nil, "")

	// An unknown client's name is throttled alike (and costs a hash).
	for range rate.Burst {
		_, err := f.as.AuthenticateClient(t.Context(), "nobody", "guess")
		want(t, err, authserver.ErrInvalidClient, "")
	}
	_, err = f.as.AuthenticateClient(t.Context(), "nobody", "guess")
	want(t, err, service.ErrThrottled, "")

	// The login page's password check.
	for range rate.Burst {
		_, err := f.Service.CheckPassword(t.Context(), "bob", "guess")
		want(t, err, service.ErrAuthentication, "")
	}
	_, err = f.Service.CheckPassword(t.Context(), "bob", password)
	want(t, err, service.ErrThrottled, "")
	f.Clock.Advance(rate.Every)
	if _, err := f.Service.CheckPassword(t.Context(), "bob", password); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}
