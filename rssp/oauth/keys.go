package oauth

// The security keys page: a logged-in user lists, adds (WebAuthn
// registration) and removes their FIDO2 security keys.

import (
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
)

// keysPage is GET oauth2/keys: the list, or the login page first.
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request) {
	bs, v, err := s.ensureSession(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if bs.UserID == "" {
		s.render(w, r, http.StatusOK, "login.html", pageData{Title: "Sign in", Then: "keys", CSRF: csrfToken(v), Client: keysClient})
		return
	}
	s.renderKeys(w, r, http.StatusOK, bs, v, "", "")
}

// keysLoginSubmit is POST oauth2/login when Hydra is the authorization
// server: only the security keys page's login (then=keys), as there are
// no pending authorizations of the rssp's own.
func (s *Server) keysLoginSubmit(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if form.Get("then") != "keys" {
		s.errorPage(w, r, invalid("Sign in from the application, or at the security keys page"))
		return
	}
	s.loginSubmit(w, r)
}

// renderKeys shows the user's keys, with an error or a notice.
func (s *Server) renderKeys(w http.ResponseWriter, r *http.Request, status int, bs authserver.BrowserSession, session, errText, notice string) {
	keys, err := s.oauth.SecurityKeys(r.Context(), bs.UserID)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d := pageData{Title: "Security keys", CSRF: csrfToken(session), UserName: bs.UserName, Error: errText, Notice: notice,
		FIDO: s.oauth.FIDOAvailable()}
	for _, k := range keys {
		kv := keyView{ID: hex.EncodeToString(k.ID), Name: k.Name, Added: k.CreatedAt.Format(time.DateTime + " MST"), LastUsed: "never"}
		if !k.LastUsedAt.IsZero() {
			kv.LastUsed = k.LastUsedAt.Format(time.DateTime + " MST")
		}
		d.Keys = append(d.Keys, kv)
	}
	s.render(w, r, status, "keys.html", d)
}

// keysSubmit is POST oauth2/keys: action add (start a registration),
// key (the browser's answer to it) or remove.
func (s *Server) keysSubmit(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	bs, v, _ := s.session(r)
	if err := s.checkForm(r, form, v); err != nil {
		s.errorPage(w, r, err)
		return
	}
	if bs.UserID == "" {
		http.Redirect(w, r, "keys", http.StatusSeeOther)
		return
	}
	refused := func(err error) bool {
		return errors.Is(err, service.ErrInvalidRequest) || errors.Is(err, service.ErrAccessDenied)
	}
	switch form.Get("action") {
	case "remove":
		err := s.oauth.RemoveSecurityKey(r.Context(), bs.UserID, form.Get("id"))
		switch {
		case refused(err):
			_, _, desc := s.classify(r, err)
			s.renderKeys(w, r, http.StatusBadRequest, bs, v, desc, "")
		case err != nil:
			s.errorPage(w, r, err)
		default:
			s.renderKeys(w, r, http.StatusOK, bs, v, "", "The security key was removed.")
		}
	case "add":
		opts, err := s.oauth.BeginRegistration(r.Context(), v, bs.UserID, form.Get("name"))
		switch {
		case refused(err):
			status, _, desc := s.classify(r, err)
			s.renderKeys(w, r, status, bs, v, desc, "")
		case err != nil:
			s.errorPage(w, r, err)
		default:
			s.render(w, r, http.StatusOK, "key.html", pageData{Title: "Add a security key", CSRF: csrfToken(v),
				KeyAction: "keys", KeyOptions: string(opts),
				KeyPrompt: "Insert or touch the security key to add it to your account."})
		}
	case "key":
		k, err := s.oauth.FinishRegistration(r.Context(), v, bs.UserID, []byte(form.Get("webauthn")))
		switch {
		case refused(err):
			status, _, desc := s.classify(r, err)
			s.renderKeys(w, r, status, bs, v, desc, "")
		case err != nil:
			s.errorPage(w, r, err)
		default:
			s.renderKeys(w, r, http.StatusOK, bs, v, "", "The security key "+k.Name+" was added.")
		}
	default:
		s.errorPage(w, r, invalid("Choose what to do with your security keys"))
	}
}
