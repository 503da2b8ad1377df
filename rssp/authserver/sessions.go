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

// LoginStep is where a login stands after the password.
type LoginStep struct {
	// Session is the browser's new session (cookie value) and Expires its
	// end: logged in when KeyOptions is nil; otherwise still anonymous,
	// with a security key check under way.
	Session string
	Expires time.Time
	// KeyOptions, when set, are the options (JSON) for
	// navigator.credentials.get: the user has security keys (or must have
	// one) and FinishKeyLogin completes the login with the browser's answer.
	KeyOptions []byte
}

// Login checks a user's password on the login page and replaces the
// browser's session by a new one (no session fixation): logged in, or,
// when the user has security keys or is required to use one, anonymous
// with a security key check under way (the second factor; the login page
// of an external authorization server uses the same two steps). A user
// required to use a key who has none cannot log in.
func (o *Server) Login(ctx context.Context, oldSession, name, password string) (LoginStep, error) {
	u, err := o.csc.CheckPassword(ctx, name, password)
	if err != nil {
		return LoginStep{}, err
	}
	keys, err := o.st.WebAuthnKeys(ctx, u.ID)
	if err != nil {
		return LoginStep{}, err
	}
	if err := o.EndSession(ctx, oldSession); err != nil {
		return LoginStep{}, err
	}
	if len(keys) == 0 {
		if u.RequireFIDO {
			err := fail(service.ErrAccessDenied, "A security key is required for this account, and none is registered; ask the operator")
			o.audit(ctx, "fido login", u.ID, "", nil, err, "no security key registered")
			return LoginStep{}, err
		}
		v, exp, err := o.NewSession(ctx, u.ID)
		return LoginStep{Session: v, Expires: exp}, err
	}
	v, exp, err := o.NewSession(ctx, "")
	if err != nil {
		return LoginStep{}, err
	}
	opts, err := o.beginAssertion(ctx, v, purposeLogin, u.ID, "", false)
	if err != nil {
		return LoginStep{}, err
	}
	return LoginStep{Session: v, Expires: exp, KeyOptions: opts}, nil
}

// FinishKeyLogin completes a login with the browser's answer to the
// security key check that Login started on session: the session is
// replaced by a logged-in one. It returns the new session and the key
// used (the audit log names it too).
func (o *Server) FinishKeyLogin(ctx context.Context, session string, response []byte) (value string, expires time.Time, key store.WebAuthnKey, err error) {
	key, err = o.finishAssertion(ctx, session, purposeLogin, "", "", "", response)
	if err != nil {
		return "", time.Time{}, key, err
	}
	if err := o.EndSession(ctx, session); err != nil {
		return "", time.Time{}, key, err
	}
	value, expires, err = o.NewSession(ctx, key.UserID)
	return value, expires, key, err
}
