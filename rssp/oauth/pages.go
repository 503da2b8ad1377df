package oauth

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
)

//go:embed templates/*.html templates/style.css templates/poll.js templates/webauthn.js
var templateFS embed.FS

var (
	pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))
	css   = mustRead("templates/style.css")
	// poll is the login and consent pages' script: it asks oauth2/status
	// every few seconds and says so when the program that asked for the
	// request abandoned it.
	poll = mustRead("templates/poll.js")
	// keyJS is the security key step's script (navigator.credentials).
	keyJS = mustRead("templates/webauthn.js")
	// pageCSP allows the pages' own inline style and scripts, fetching
	// from the service (the poll), and nothing else.
	pageCSP = "default-src 'none'; style-src '" + sha256Source(css) + "'; script-src '" + sha256Source(poll) +
		"' '" + sha256Source(keyJS) + "'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)

func sha256Source(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(h[:])
}

func mustRead(name string) string {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// pageData is what the templates see.
type pageData struct {
	Title, Service string
	CSS            template.CSS
	Script         template.JS // the status poll, on pages with a Handle
	Error, Code    string
	Handle, CSRF   string
	Client         string
	Username       string // login: the name typed
	UserName       string // consent: who is logged in
	// Consent.
	Cred             *authserver.ConsentCredential
	NumSignatures    int
	Description      string
	Docs             []docView
	HashName         string
	TTL              string
	NeedPIN, NeedOTP bool
	// The security key step (key.html, and consent.html with NeedKey):
	// the options for the browser (JSON), where the form goes, what the
	// page says; KeyUV: user verification is required.
	KeyScript            template.JS
	KeyOptions           string
	KeyAction, KeyPrompt string
	NeedKey, KeyUV       bool
	// Then is where a login goes afterwards: "" (the consent page) or
	// "keys" (the security keys page).
	Then string
	// The security keys page.
	Keys        []keyView
	Notice      string
	RequireFIDO bool
	FIDO        bool // security keys are available
}

type keyView struct {
	ID, Name, Added, LastUsed string
}

type docView struct {
	N     int
	Label string
	Hash  string
}

// render writes a page with the headers every page gets.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	d.Service, d.CSS = s.opt.ServiceName, template.CSS(css)
	if d.Handle != "" {
		d.Script = template.JS(poll)
	}
	if d.KeyOptions != "" {
		d.KeyScript = template.JS(keyJS)
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("oauth: render page", "page", name, "err", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage tells the user what went wrong, when it cannot go back to the
// client.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	status, code, desc := s.classify(r, err)
	setRetryAfter(w, status, err)
	if errors.Is(err, authserver.ErrAbandoned) {
		s.render(w, r, status, "abandoned.html", pageData{Title: "Request abandoned", Error: desc})
		return
	}
	s.render(w, r, status, "error.html", pageData{Title: "Cannot continue", Error: desc, Code: code})
}

// ensureSession returns the browser's session cookie value, starting an
// anonymous session when it has none.
func (s *Server) ensureSession(w http.ResponseWriter, r *http.Request) (authserver.BrowserSession, string, error) {
	if bs, v, ok := s.session(r); ok {
		return bs, v, nil
	}
	v, exp, err := s.oauth.NewSession(r.Context(), "")
	if err != nil {
		return authserver.BrowserSession{}, "", err
	}
	s.setSessionCookie(w, v, exp)
	return authserver.BrowserSession{ExpiresAt: exp}, v, nil
}

// loginPage is GET oauth2/login?request=HANDLE.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	handle := r.URL.Query().Get("request")
	a, err := s.oauth.Authorization(r.Context(), handle)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	_, v, err := s.ensureSession(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "login.html", pageData{Title: "Sign in", Handle: handle, CSRF: csrfToken(v), Client: a.Client.Name})
}

// keysClient is what the login page names as the destination of a login
// to the security keys page.
const keysClient = "your security keys"

// loginSubmit is POST oauth2/login: the password, then, when the user has
// security keys, the key (step=key). On success the session is replaced by
// a logged-in one and the browser goes on to the consent page (or the
// security keys page).
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	_, old, _ := s.session(r)
	if err := s.checkForm(r, form, old); err != nil {
		s.errorPage(w, r, err)
		return
	}
	handle, then := form.Get("request"), form.Get("then")
	client, next := keysClient, "keys"
	if then != "keys" {
		then = ""
		a, err := s.oauth.Authorization(r.Context(), handle)
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		client, next = a.Client.Name, "consent?request="+url.QueryEscape(handle)
	}
	again := func(status int, session, name string, err error) {
		_, _, desc := s.classify(r, err)
		setRetryAfter(w, status, err)
		s.render(w, r, status, "login.html", pageData{Title: "Sign in", Handle: handle, Then: then,
			CSRF: csrfToken(session), Client: client, Username: name, Error: desc})
	}
	if form.Get("step") == "key" {
		v, exp, _, err := s.oauth.FinishKeyLogin(r.Context(), old, []byte(form.Get("webauthn")))
		if errors.Is(err, service.ErrAccessDenied) {
			again(http.StatusForbidden, old, "", err)
			return
		}
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		s.setSessionCookie(w, v, exp)
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	name := strings.TrimSpace(form.Get("username"))
	step, err := s.oauth.Login(r.Context(), old, name, form.Get("password"))
	if errors.Is(err, service.ErrAuthentication) || errors.Is(err, service.ErrThrottled) || errors.Is(err, service.ErrUnavailable) ||
		errors.Is(err, service.ErrAccessDenied) {
		status, _, _ := s.classify(r, err)
		again(status, old, name, err)
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.setSessionCookie(w, step.Session, step.Expires)
	if step.KeyOptions != nil {
		s.render(w, r, http.StatusOK, "key.html", pageData{Title: "Security key", Handle: handle, Then: then,
			CSRF: csrfToken(step.Session), Client: client, KeyAction: "login", KeyOptions: string(step.KeyOptions),
			KeyPrompt: "Confirm that it is you with your security key."})
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// consentData prepares the consent page; an error means the request cannot
// be granted to this user.
func (s *Server) consentData(r *http.Request, bs authserver.BrowserSession, session string, a authserver.Authorization, startKey bool) (pageData, error) {
	d := pageData{Title: "Authorize", Handle: a.Handle, CSRF: csrfToken(session), Client: a.Client.Name,
		UserName: bs.UserName, NumSignatures: a.Request.NumSignatures, Description: a.Request.Description}
	if a.Request.Scope != service.ScopeCredential {
		return d, nil
	}
	cc, err := s.oauth.ConsentCredential(r.Context(), bs.UserID, a)
	if err != nil {
		return d, err
	}
	d.Cred, d.NeedPIN, d.NeedOTP, d.NeedKey, d.KeyUV = &cc, cc.NeedPIN, cc.NeedOTP, cc.NeedKey, cc.NeedKey && cc.SCAL >= 2
	if cc.NeedKey && startKey {
		opts, err := s.oauth.ConsentKeyOptions(r.Context(), session, bs.UserID, a)
		if err != nil {
			return d, err
		}
		d.KeyOptions = string(opts)
	}
	if h, ok := csc.HashByOID(a.Request.HashAlgorithm); ok {
		d.HashName = h.String()
	}
	for i, h := range a.Request.Hashes {
		dv := docView{N: i + 1, Hash: base64.StdEncoding.EncodeToString(h)}
		if i < len(a.Request.Labels) {
			dv.Label = a.Request.Labels[i]
		}
		d.Docs = append(d.Docs, dv)
	}
	d.TTL = s.oauth.CredentialTokenTTL().Round(time.Second).String()
	return d, nil
}

// consentPage is GET oauth2/consent?request=HANDLE.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	handle := r.URL.Query().Get("request")
	bs, v, ok := s.session(r)
	if !ok || bs.UserID == "" {
		http.Redirect(w, r, "login?request="+url.QueryEscape(handle), http.StatusFound)
		return
	}
	a, err := s.oauth.Authorization(r.Context(), handle)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d, err := s.consentData(r, bs, v, a, true)
	if err != nil {
		s.abort(w, r, bs, a, err)
		return
	}
	s.render(w, r, http.StatusOK, "consent.html", d)
}

// abort ends an authorization that cannot be granted and tells the client.
func (s *Server) abort(w http.ResponseWriter, r *http.Request, bs authserver.BrowserSession, a authserver.Authorization, cause error) {
	a, answer, err := s.oauth.Deny(r.Context(), bs.UserID, a.Handle, cause)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.redirectError(w, r, a.RedirectURI, a.Request.State, answer, http.StatusSeeOther)
}

// consentSubmit is POST oauth2/consent: approve (with the credential's
// factors) or deny.
func (s *Server) consentSubmit(w http.ResponseWriter, r *http.Request) {
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
	handle := form.Get("request")
	if bs.UserID == "" {
		http.Redirect(w, r, "login?request="+url.QueryEscape(handle), http.StatusSeeOther)
		return
	}
	a, err := s.oauth.Authorization(r.Context(), handle)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	switch form.Get("action") {
	case "deny":
		s.abort(w, r, bs, a, nil)
		return
	case "approve":
	default:
		s.errorPage(w, r, invalid("Choose to sign or deny"))
		return
	}
	d, err := s.consentData(r, bs, v, a, false)
	if err != nil {
		s.abort(w, r, bs, a, err)
		return
	}
	var factors []csc.AuthData
	if d.NeedPIN {
		factors = append(factors, csc.AuthData{ID: service.FactorPIN, Value: form.Get("pin")})
	}
	if d.NeedOTP {
		factors = append(factors, csc.AuthData{ID: service.FactorOTP, Value: strings.TrimSpace(form.Get("otp"))})
	}
	var code string
	if d.NeedKey {
		code, a, err = s.oauth.ApproveWithKey(r.Context(), bs.UserID, v, handle, factors, []byte(form.Get("webauthn")))
	} else {
		code, a, err = s.oauth.Approve(r.Context(), bs.UserID, handle, factors)
	}
	switch {
	case errors.Is(err, service.ErrInvalidPIN), errors.Is(err, service.ErrInvalidOTP), errors.Is(err, service.ErrLocked),
		d.NeedKey && errors.Is(err, service.ErrAccessDenied) && !errors.Is(err, authserver.ErrAbandoned):
		status, _, desc := s.classify(r, err)
		if d, err = s.consentData(r, bs, v, a, true); err != nil { // a new security key check
			s.abort(w, r, bs, a, err)
			return
		}
		d.Error = desc
		s.render(w, r, status, "consent.html", d)
		return
	case err != nil:
		s.errorPage(w, r, err)
		return
	}
	s.redirectClient(w, r, a.RedirectURI, a.Request.State, url.Values{"code": {code}}, http.StatusSeeOther)
}
