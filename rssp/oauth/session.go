package oauth

// The browser's session with the pages (a cookie) and the CSRF token of
// their forms.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"

	"github.com/csctoken/csctoken/rssp/authserver"
)

func (s *Server) cookieName() string {
	if s.secure() {
		return "__Host-rssp_oauth"
	}
	return "rssp_oauth"
}

// session returns the browser's session and its cookie value.
func (s *Server) session(r *http.Request) (authserver.BrowserSession, string, bool) {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return authserver.BrowserSession{}, "", false
	}
	bs, err := s.oauth.Session(r.Context(), c.Value)
	if err != nil {
		return authserver.BrowserSession{}, "", false
	}
	return bs, c.Value, true
}

func (s *Server) setSessionCookie(w http.ResponseWriter, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: value, Path: "/", Expires: expires,
		MaxAge: max(1, int(time.Until(expires).Seconds())), Secure: s.secure(), HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken is the forms' per-session CSRF token: a hash of the session
// cookie, which pages of other sites can neither read nor compute.
func csrfToken(session string) string {
	h := sha256.Sum256([]byte("csctoken oauth2 csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// checkForm refuses a form posted from another origin or without the
// session's CSRF token.
func (s *Server) checkForm(r *http.Request, form url.Values, session string) error {
	if o := r.Header.Get("Origin"); o != "" && o != s.origin() {
		return problem(errForbidden, "The form was sent from another site")
	}
	token, err := single(form, "csrf")
	if err != nil || session == "" || token == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(csrfToken(session))) != 1 {
		return problem(errForbidden, "The form has expired or was not sent by this site; start again from the application")
	}
	return nil
}
