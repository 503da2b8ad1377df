package oauth

// The rssp as ORY Hydra's login and consent provider (docs/external-as.md):
// Hydra is the authorization server, and sends the browser here with a
// login_challenge, then a consent_challenge. These pages read the request
// from Hydra's admin API, authenticate the user and show what will be
// signed with the rssp's own pages, and answer through the admin API
// (accept or reject), whose answer says where the browser goes next.
//
// The login is the rssp's own browser login (authserver.Login, the
// password; with its second factors): the login page accepts the login at
// Hydra once the browser's rssp session is logged in, with the user's
// external subject as Hydra's subject. The consent page shows the
// credential, the number of signatures and each hash with its label, read
// from the authorization request's URL as Hydra received it (the CSC query
// parameters or authorization_details), collects the credential's PIN or
// OTP (and, for a credential with that factor, the user's security key,
// tied to the consent challenge), and accepts with the binding in the
// access token's claims: authorization_details of type credential (ORY
// Hydra puts the consent's access_token session claims under "ext"),
// which rssp/extauth reads. The rssp's security keys page is served too,
// where users register their keys.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// HydraOptions make the server ORY Hydra's login and consent provider
// instead of an authorization server of its own.
type HydraOptions struct {
	// AdminURL is Hydra's admin API (e.g. http://127.0.0.1:4445).
	AdminURL string
	// Audience is granted to the access tokens (the rssp's
	// oauth2.audience).
	Audience string
	// HTTPClient talks to the admin API (default: 10 s timeout).
	HTTPClient *http.Client
}

// hydraClient is a Hydra client as the admin API describes it.
type hydraClient struct {
	ID    string `json:"client_id"`
	Name  string `json:"client_name"`
	Scope string `json:"scope"` // the scopes it may be granted
}

// hydraRequest is a login or consent request of the admin API.
type hydraRequest struct {
	Challenge         string      `json:"challenge"`
	Skip              bool        `json:"skip"`
	Subject           string      `json:"subject"`
	Client            hydraClient `json:"client"`
	RequestURL        string      `json:"request_url"`
	RequestedScope    []string    `json:"requested_scope"`
	RequestedAudience []string    `json:"requested_access_token_audience"`
}

// errHydra: the admin API failed or answered nonsense.
var errHydra = errors.New("hydra admin API")

// hydraCall sends one admin API request; out receives the JSON answer.
func (s *Server) hydraCall(ctx context.Context, method, path, challengeParam, challenge string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := strings.TrimRight(s.opt.Hydra.AdminURL, "/") + path + "?" + url.Values{challengeParam: {challenge}}.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%w: %w", errHydra, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.opt.Hydra.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errHydra, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %w", errHydra, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		// Unknown, expired or already answered.
		return invalid("This sign-in request is unknown or was already answered; start again from the application")
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s %s answered %s", errHydra, method, path, resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %s %s: %w", errHydra, method, path, err)
	}
	return nil
}

type hydraRedirect struct {
	RedirectTo string `json:"redirect_to"`
}

// hydraAnswer accepts or rejects a request and sends the browser on.
func (s *Server) hydraAnswer(w http.ResponseWriter, r *http.Request, kind, verb, challenge string, body any) {
	var out hydraRedirect
	err := s.hydraCall(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/"+kind+"/"+verb, kind+"_challenge", challenge, body, &out)
	if err == nil && out.RedirectTo == "" {
		err = fmt.Errorf("%w: %s %s: no redirect_to", errHydra, kind, verb)
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, out.RedirectTo, http.StatusSeeOther)
}

// hydraReject answers a login or consent with access_denied.
func (s *Server) hydraReject(w http.ResponseWriter, r *http.Request, kind, challenge string, cause error) {
	desc := "The user denied the request"
	if cause != nil {
		_, _, desc = s.classify(r, cause)
	}
	s.hydraAnswer(w, r, kind, "reject", challenge, map[string]any{"error": "access_denied", "error_description": desc})
}

func clientName(c hydraClient) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// --- Login ---------------------------------------------------------------

func (s *Server) hydraLoginRequest(ctx context.Context, challenge string) (hydraRequest, error) {
	if challenge == "" {
		return hydraRequest{}, invalid("Missing login_challenge")
	}
	var lr hydraRequest
	err := s.hydraCall(ctx, http.MethodGet, "/admin/oauth2/auth/requests/login", "login_challenge", challenge, nil, &lr)
	return lr, err
}

// hydraLoginPage is GET oauth2/hydra/login?login_challenge=C: accepted at
// once when Hydra remembers the user or the browser's rssp session is
// logged in, otherwise the login form.
func (s *Server) hydraLoginPage(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	lr, err := s.hydraLoginRequest(r.Context(), challenge)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if lr.Skip && lr.Subject != "" {
		s.hydraAnswer(w, r, "login", "accept", challenge, map[string]any{"subject": lr.Subject})
		return
	}
	bs, v, err := s.ensureSession(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if bs.UserID != "" {
		s.hydraAcceptLogin(w, r, challenge, bs.UserID)
		return
	}
	s.render(w, r, http.StatusOK, "login.html", pageData{Title: "Sign in", Handle: challenge, CSRF: csrfToken(v), Client: clientName(lr.Client)})
}

// hydraLoginSubmit is POST oauth2/hydra/login: the rssp's own login (the
// same as its login page's), then back to the GET, which accepts.
func (s *Server) hydraLoginSubmit(w http.ResponseWriter, r *http.Request) {
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
	challenge := form.Get("request")
	lr, err := s.hydraLoginRequest(r.Context(), challenge)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	again := func(session, name string, err error) {
		status, _, desc := s.classify(r, err)
		setRetryAfter(w, status, err)
		s.render(w, r, status, "login.html", pageData{Title: "Sign in", Handle: challenge,
			CSRF: csrfToken(session), Client: clientName(lr.Client), Username: name, Error: desc})
	}
	back := "login?" + url.Values{"login_challenge": {challenge}}.Encode()
	if form.Get("step") == "key" {
		// The security key, second step of the rssp's login.
		v, exp, _, err := s.oauth.FinishKeyLogin(r.Context(), old, []byte(form.Get("webauthn")))
		if errors.Is(err, service.ErrAccessDenied) {
			again(old, "", err)
			return
		}
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		s.setSessionCookie(w, v, exp)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	name := strings.TrimSpace(form.Get("username"))
	step, err := s.oauth.Login(r.Context(), old, name, form.Get("password"))
	if errors.Is(err, service.ErrAuthentication) || errors.Is(err, service.ErrThrottled) || errors.Is(err, service.ErrUnavailable) ||
		errors.Is(err, service.ErrAccessDenied) {
		again(old, name, err)
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.setSessionCookie(w, step.Session, step.Expires)
	if step.KeyOptions != nil {
		s.render(w, r, http.StatusOK, "key.html", pageData{Title: "Security key", Handle: challenge,
			CSRF: csrfToken(step.Session), Client: clientName(lr.Client), KeyAction: "login", KeyOptions: string(step.KeyOptions),
			KeyPrompt: "Confirm that it is you with your security key."})
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// hydraAcceptLogin accepts the login with the user's external subject.
func (s *Server) hydraAcceptLogin(w http.ResponseWriter, r *http.Request, challenge, userID string) {
	u, err := s.svc.Store().UserByID(r.Context(), userID)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if u.ExternalSubject == "" {
		s.hydraReject(w, r, "login", challenge, problem(service.ErrAccessDenied,
			"The account %s has no subject at the authorization server (rssp admin user external-subject)", u.Name))
		return
	}
	s.svc.Audit(r.Context(), "oauth2 login", u.ID, "", nil, "ok", "hydra login accepted, subject "+u.ExternalSubject)
	s.hydraAnswer(w, r, "login", "accept", challenge, map[string]any{"subject": u.ExternalSubject})
}

// --- Consent -------------------------------------------------------------

// hydraConsent reads a consent request and what it asks, as an
// authorization of the rssp's own pages, with the user of its subject.
func (s *Server) hydraConsent(ctx context.Context, challenge string) (hydraRequest, authserver.Authorization, authserver.BrowserSession, error) {
	var cr hydraRequest
	if challenge == "" {
		return cr, authserver.Authorization{}, authserver.BrowserSession{}, invalid("Missing consent_challenge")
	}
	if err := s.hydraCall(ctx, http.MethodGet, "/admin/oauth2/auth/requests/consent", "consent_challenge", challenge, nil, &cr); err != nil {
		return cr, authserver.Authorization{}, authserver.BrowserSession{}, err
	}
	a := authserver.Authorization{Handle: challenge, Client: store.OAuthClient{ID: cr.Client.ID, Name: clientName(cr.Client)}}
	u, err := s.svc.Store().UserByExternalSubject(ctx, cr.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return cr, a, authserver.BrowserSession{}, problem(service.ErrAccessDenied, "The subject is not a user of this service")
	}
	if err != nil {
		return cr, a, authserver.BrowserSession{}, err
	}
	bs := authserver.BrowserSession{UserID: u.ID, UserName: u.Name}
	ru, err := url.Parse(cr.RequestURL)
	if err != nil {
		return cr, a, bs, fmt.Errorf("%w: request_url: %w", errHydra, err)
	}
	q := ru.Query()
	// Only the CSC scopes are the rssp's to show (others, such as openid
	// or offline_access, are the authorization server's).
	var scopes []string
	for _, sc := range strings.Fields(q.Get("scope")) {
		if sc == service.ScopeService || sc == service.ScopeCredential {
			scopes = append(scopes, sc)
		}
	}
	q.Set("scope", strings.Join(scopes, " "))
	req, _, err := parseAuthRequest(q)
	if err != nil {
		return cr, a, bs, err
	}
	if err := s.oauth.CheckRequest(&req); err != nil {
		return cr, a, bs, err
	}
	a.Request = req
	return cr, a, bs, nil
}

// hydraConsentPage is GET oauth2/hydra/consent?consent_challenge=C.
func (s *Server) hydraConsentPage(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	_, a, bs, err := s.hydraConsent(r.Context(), challenge)
	if err != nil {
		s.hydraConsentFailed(w, r, challenge, err)
		return
	}
	_, v, err := s.ensureSession(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d, err := s.hydraConsentData(r, bs, v, a, true)
	if err != nil {
		s.hydraReject(w, r, "consent", challenge, err)
		return
	}
	s.render(w, r, http.StatusOK, "consent.html", d)
}

// hydraConsentFailed tells Hydra (and so the client) when the request
// cannot be granted, or the user when Hydra cannot be asked.
func (s *Server) hydraConsentFailed(w http.ResponseWriter, r *http.Request, challenge string, err error) {
	if errors.Is(err, errHydra) || challenge == "" {
		s.errorPage(w, r, err)
		return
	}
	var p *service.Problem
	if errors.As(err, &p) && strings.HasPrefix(p.Description, "This sign-in request is unknown") {
		s.errorPage(w, r, err)
		return
	}
	s.hydraReject(w, r, "consent", challenge, err)
}

// hydraConsentSubmit is POST oauth2/hydra/consent: deny, or approve with
// the credential's factors; the access token then carries the binding.
func (s *Server) hydraConsentSubmit(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	_, v, _ := s.session(r)
	if err := s.checkForm(r, form, v); err != nil {
		s.errorPage(w, r, err)
		return
	}
	challenge := form.Get("request")
	cr, a, bs, err := s.hydraConsent(r.Context(), challenge)
	if err != nil {
		s.hydraConsentFailed(w, r, challenge, err)
		return
	}
	switch form.Get("action") {
	case "deny":
		s.svc.Audit(r.Context(), "oauth2 consent", bs.UserID, a.Request.CredentialID, a.Request.Hashes, "access_denied", "hydra client "+a.Client.ID)
		s.hydraReject(w, r, "consent", challenge, nil)
		return
	case "approve":
	default:
		s.errorPage(w, r, invalid("Choose to sign or deny"))
		return
	}
	d, err := s.hydraConsentData(r, bs, v, a, false)
	if err != nil {
		s.hydraReject(w, r, "consent", challenge, err)
		return
	}
	session := map[string]any{}
	keyUsed := ""
	if d.Cred != nil {
		keyUsed, err = s.hydraCheckFactors(r.Context(), bs.UserID, v, a, d, form)
		if err != nil {
			if errors.Is(err, service.ErrInvalidPIN) || errors.Is(err, service.ErrInvalidOTP) || errors.Is(err, service.ErrLocked) ||
				d.NeedKey && errors.Is(err, service.ErrAccessDenied) {
				status, _, desc := s.classify(r, err)
				if d, err = s.hydraConsentData(r, bs, v, a, true); err != nil { // a new security key check
					s.hydraReject(w, r, "consent", challenge, err)
					return
				}
				d.Error = desc
				s.render(w, r, status, "consent.html", d)
				return
			}
			s.hydraReject(w, r, "consent", challenge, err)
			return
		}
		detail := AuthorizationDetail{Type: RARTypeCredential, CredentialID: a.Request.CredentialID,
			NumSignatures: a.Request.NumSignatures, HashAlgorithmOID: a.Request.HashAlgorithm}
		for i, h := range a.Request.Hashes {
			dd := DocumentDigest{Hash: base64.StdEncoding.EncodeToString(h)}
			if i < len(a.Request.Labels) {
				dd.Label = a.Request.Labels[i]
			}
			detail.DocumentDigests = append(detail.DocumentDigests, dd)
		}
		session["authorization_details"] = []AuthorizationDetail{detail}
	}
	s.svc.Audit(r.Context(), "oauth2 consent", bs.UserID, a.Request.CredentialID, a.Request.Hashes, "ok",
		fmt.Sprintf("hydra client %s scope %s numSignatures=%d%s", a.Client.ID, a.Request.Scope, a.Request.NumSignatures, keyUsed))
	// The CSC scope (authorization_details imply credential without a
	// scope parameter) is granted with what was requested.
	grant := cr.RequestedScope
	if !slices.Contains(grant, a.Request.Scope) {
		grant = append(grant, a.Request.Scope)
	}
	// A service login is renewed silently, as with the rssp's own server:
	// Hydra issues a refresh token with offline_access, which a CSC client
	// does not ask for, when the client may have it.
	if a.Request.Scope == service.ScopeService && !slices.Contains(grant, "offline_access") &&
		slices.Contains(strings.Fields(cr.Client.Scope), "offline_access") {
		grant = append(grant, "offline_access")
	}
	s.hydraAnswer(w, r, "consent", "accept", challenge, map[string]any{
		"grant_scope":                 grant,
		"grant_access_token_audience": []string{s.opt.Hydra.Audience},
		"remember":                    false,
		"session":                     map[string]any{"access_token": session},
	})
}

// hydraConsentData is consentData for a Hydra consent. A credential whose
// factor is a security key is checked with a key ceremony tied to the
// consent challenge and the browser session (startKey: a new one).
func (s *Server) hydraConsentData(r *http.Request, bs authserver.BrowserSession, session string, a authserver.Authorization, startKey bool) (pageData, error) {
	d, err := s.consentData(r, bs, session, a, false)
	if err != nil || !d.NeedKey || !startKey {
		return d, err
	}
	c, err := s.svc.UserCredential(r.Context(), bs.UserID, a.Request.CredentialID)
	if err != nil {
		return d, err
	}
	opts, err := s.oauth.BeginCredentialKey(r.Context(), session, bs.UserID, a.Handle, c)
	if err != nil {
		return d, err
	}
	d.KeyOptions = string(opts)
	return d, nil
}

// hydraStatus answers the pages' status poll: a Hydra request is never
// abandoned through this service.
func (s *Server) hydraStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"state": "gone"})
}

// hydraCheckFactors checks the credential's security key, PIN and OTP of
// the consent form, as the rssp's own consent does; it returns the key
// used for the audit row (" key ..."), or "".
func (s *Server) hydraCheckFactors(ctx context.Context, userID, session string, a authserver.Authorization, d pageData, form url.Values) (string, error) {
	c, err := s.svc.UserCredential(ctx, userID, a.Request.CredentialID)
	if err != nil {
		return "", err
	}
	if err := s.svc.CheckUsable(c); err != nil {
		return "", err
	}
	keyUsed := ""
	if d.NeedKey {
		k, err := s.oauth.FinishCredentialKey(ctx, session, userID, a.Handle, c, []byte(form.Get("webauthn")))
		if err != nil {
			return "", err
		}
		keyUsed = " " + authserver.KeyDetail(k)
	}
	var factors []csc.AuthData
	if d.NeedPIN {
		factors = append(factors, csc.AuthData{ID: service.FactorPIN, Value: form.Get("pin")})
	}
	if d.NeedOTP {
		factors = append(factors, csc.AuthData{ID: service.FactorOTP, Value: strings.TrimSpace(form.Get("otp"))})
	}
	return keyUsed, s.svc.CheckFactors(ctx, c, factors)
}
