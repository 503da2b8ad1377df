package authserver

import (
	"context"
	"errors"
	"time"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// BrowserSession is a browser's session with the pages.
type BrowserSession struct {
	UserID    string // empty before login
	UserName  string
	ExpiresAt time.Time
}

// NewSession starts a session (anonymous when userID is empty) and returns
// the cookie value; only its hash is stored.
func (o *Server) NewSession(ctx context.Context, userID string) (value string, expires time.Time, err error) {
	if value, err = secret.NewToken(); err != nil {
		return "", time.Time{}, err
	}
	now := o.now()
	s := store.OAuthSession{Hash: secret.TokenHash(value), UserID: userID, ExpiresAt: now.Add(o.opt.SessionTTL), CreatedAt: now}
	if userID != "" {
		s.AuthTime = now
	}
	if err := o.st.CreateOAuthSession(ctx, s); err != nil {
		return "", time.Time{}, err
	}
	return value, s.ExpiresAt, nil
}

// Session looks a cookie up: ErrInvalidToken when unknown, expired or
// when its user is disabled.
func (o *Server) Session(ctx context.Context, value string) (BrowserSession, error) {
	if value == "" {
		return BrowserSession{}, fail(service.ErrInvalidToken, "No session")
	}
	s, err := o.st.OAuthSession(ctx, secret.TokenHash(value))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !o.now().Before(s.ExpiresAt)) {
		return BrowserSession{}, fail(service.ErrInvalidToken, "The session has ended")
	}
	if err != nil {
		return BrowserSession{}, err
	}
	bs := BrowserSession{UserID: s.UserID, ExpiresAt: s.ExpiresAt}
	if s.UserID != "" {
		u, err := o.st.UserByID(ctx, s.UserID)
		if err != nil || u.Disabled {
			return BrowserSession{}, fail(service.ErrInvalidToken, "The account is no longer active")
		}
		bs.UserName = u.Name
	}
	return bs, nil
}

// EndSession deletes a session; an unknown one is not an error.
func (o *Server) EndSession(ctx context.Context, value string) error {
	if value == "" {
		return nil
	}
	if err := o.st.DeleteOAuthSession(ctx, secret.TokenHash(value)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// Login checks a user's password on the login page and replaces the
// browser's session by a new, logged-in one (no session fixation).
func (o *Server) Login(ctx context.Context, oldSession, name, password string) (value string, expires time.Time, err error) {
	u, err := o.csc.CheckPassword(ctx, name, password)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := o.EndSession(ctx, oldSession); err != nil {
		return "", time.Time{}, err
	}
	return o.NewSession(ctx, u.ID)
}
