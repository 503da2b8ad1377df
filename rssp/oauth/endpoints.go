package oauth

// The protocol's endpoints (authorize, pushed_authorize, token, revoke,
// metadata) and the forms and client authentication they read.

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// readForm reads an application/x-www-form-urlencoded body, bounded. The
// query string is not part of it.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalid("The body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return nil, invalid("Cannot read the form (at most %d bytes)", s.opt.MaxBodyBytes)
	}
	return r.PostForm, nil
}

// clientCredentials reads the client's credentials (RFC 6749 §2.3.1): HTTP
// Basic, or client_id and client_secret in the form, not both.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, err error) {
	formID, err := single(form, "client_id")
	if err != nil {
		return "", "", err
	}
	formSecret, err := single(form, "client_secret")
	if err != nil {
		return "", "", err
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return formID, formSecret, nil
	}
	scheme, payload, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", problem(authserver.ErrInvalidClient, "Unsupported Authorization scheme: use HTTP Basic or the form")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", problem(authserver.ErrInvalidClient, "Malformed HTTP Basic credentials")
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", problem(authserver.ErrInvalidClient, "Malformed HTTP Basic credentials")
	}
	if id, err = url.QueryUnescape(u); err == nil {
		secret, err = url.QueryUnescape(p)
	}
	if err != nil {
		return "", "", problem(authserver.ErrInvalidClient, "Malformed HTTP Basic credentials")
	}
	if formSecret != "" {
		return "", "", invalid("Use one client authentication method: HTTP Basic or client_secret in the form")
	}
	if formID != "" && formID != id {
		return "", "", invalid("client_id does not match the HTTP Basic credentials")
	}
	return id, secret, nil
}

func (s *Server) authenticateClient(r *http.Request, form url.Values) (store.OAuthClient, error) {
	id, secret, err := clientCredentials(r, form)
	if err != nil {
		return store.OAuthClient{}, err
	}
	return s.oauth.AuthenticateClient(r.Context(), id, secret)
}

// authorize is GET oauth2/authorize: it checks the request, stores it as a
// pending authorization and sends the browser to the login page, or to the
// consent page when it is logged in.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, requestURI, err := parseAuthRequest(q)
	if err != nil {
		// The error goes back to the client when client and redirect URI
		// are good, to the user otherwise.
		clientID, e1 := single(q, "client_id")
		redirect, e2 := single(q, "redirect_uri")
		state, e3 := single(q, "state")
		if e1 == nil && e2 == nil && e3 == nil && requestURI == "" && q.Get("request_uri") == "" {
			if _, uri, rerr := s.oauth.ResolveRedirect(r.Context(), clientID, redirect); rerr == nil {
				s.redirectError(w, r, uri, state, err, http.StatusFound)
				return
			}
		}
		s.errorPage(w, r, err)
		return
	}
	a, err := s.oauth.StartAuthorization(r.Context(), req, requestURI)
	if err != nil {
		if a.RedirectURI != "" {
			s.redirectError(w, r, a.RedirectURI, a.Request.State, err, http.StatusFound)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	next := "login"
	if sess, _, ok := s.session(r); ok && sess.UserID != "" {
		next = "consent"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next+"?request="+url.QueryEscape(a.Handle), http.StatusFound)
}

// pushedAuthorize is POST oauth2/pushed_authorize (RFC 9126).
func (s *Server) pushedAuthorize(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req, requestURI, err := parseAuthRequest(form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if requestURI != "" {
		s.writeError(w, r, invalid("request_uri must not be pushed (RFC 9126 §2.1)"))
		return
	}
	uri, ttl, err := s.oauth.PushAuthorization(r.Context(), client, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int64  `json:"expires_in"`
	}{uri, int64(ttl.Seconds())})
}

// tokenResponse is the answer of oauth2/token (RFC 6749 §5.1 and the CSC
// fields).
type tokenResponse struct {
	AccessToken          string          `json:"access_token"`
	TokenType            string          `json:"token_type"`
	ExpiresIn            int64           `json:"expires_in"`
	RefreshToken         string          `json:"refresh_token,omitempty"`
	Scope                string          `json:"scope,omitempty"`
	CredentialID         string          `json:"credentialID,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
}

// token is POST oauth2/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := map[string]string{}
	for _, name := range []string{"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope"} {
		if p[name], err = single(form, name); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	client, err := s.authenticateClient(r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var tok authserver.Tokens
	switch p["grant_type"] {
	case "authorization_code":
		tok, err = s.oauth.ExchangeCode(r.Context(), client, p["code"], p["redirect_uri"], p["code_verifier"])
	case "refresh_token":
		tok, err = s.oauth.Refresh(r.Context(), client, p["refresh_token"], p["scope"])
	case "client_credentials":
		tok, err = s.oauth.ClientCredentials(r.Context(), client, p["scope"])
	case "":
		err = invalid("Missing parameter grant_type")
	default:
		err = problem(authserver.ErrUnsupportedGrantType, "grant_type must be authorization_code, refresh_token or client_credentials")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	details, err := echoDetails(tok.Details, tok.CredentialID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiresIn: int64(tok.ExpiresIn.Seconds()),
		RefreshToken: tok.RefreshToken, Scope: tok.Scope, CredentialID: tok.CredentialID, AuthorizationDetails: details,
	})
}

// revoke is POST oauth2/revoke (RFC 7009): 200 with an empty body.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, err := single(form, "token")
	if err == nil {
		var hint string
		if hint, err = single(form, "token_type_hint"); err == nil {
			var client store.OAuthClient
			if client, err = s.authenticateClient(r, form); err == nil {
				err = s.oauth.Revoke(r.Context(), client, token, hint)
			}
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// metadata is the RFC 8414 document.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.BaseURL()
	auth := []string{"client_secret_basic", "client_secret_post", "none"}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/oauth2/authorize",
		"token_endpoint":                                 iss + "/oauth2/token",
		"pushed_authorization_request_endpoint":          iss + "/oauth2/pushed_authorize",
		"revocation_endpoint":                            iss + "/oauth2/revoke",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          auth,
		"revocation_endpoint_auth_methods_supported":     auth,
		"scopes_supported":                               []string{service.ScopeService, service.ScopeCredential},
		"authorization_details_types_supported":          []string{RARTypeCredential, RARTypeCredentialV2},
		"authorization_response_iss_parameter_supported": true,
		"require_pushed_authorization_requests":          false,
		// Not in RFC 8414: where a client that pushed a request and
		// stopped waiting for the user says so (POST request_uri, with
		// the user's service token as Bearer).
		"csctoken_abandon_endpoint": iss + "/oauth2/abandon",
	})
}

// abandon is POST oauth2/abandon: the program that pushed a credential
// authorization stopped waiting for the user (it quit, or its signature was
// cancelled). It calls with the service token of the credential's owner as
// Bearer and the request_uri; the consent page then says the request was
// abandoned, and it can no longer be approved. 204 on success.
//
// With hold=1 the program instead holds the call open while it waits
// (see hold): a program that dies without a word (killed, or a host that
// exits without C_Finalize, as Firefox does) abandons its request by
// closing the connection.
func (s *Server) abandon(w http.ResponseWriter, r *http.Request) {
	scheme, bearer, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || bearer == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="oauth2"`)
		writeJSON(w, http.StatusUnauthorized, csc.Error{Code: csc.ErrInvalidRequest, Description: "A service token is required (Authorization: Bearer)"})
		return
	}
	p, err := s.svc.AuthenticateMethod(r.Context(), bearer, "oauth2/abandon")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	uri, err := single(form, "request_uri")
	if err == nil && uri == "" {
		err = invalid("Missing parameter request_uri")
	}
	if err == nil && form.Get("hold") == "1" {
		s.hold(w, r, p.UserID, uri)
		return
	}
	if err == nil {
		err = s.oauth.Abandon(r.Context(), p.UserID, uri)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// status is GET oauth2/status?request=HANDLE, which the login and consent
// pages poll: {"state": "pending" | "abandoned" | "gone"}, with the
// message to show when abandoned.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	state, err := s.oauth.State(r.Context(), r.URL.Query().Get("request"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		State   string `json:"state"`
		Message string `json:"message,omitempty"`
	}{State: state}
	if state == "abandoned" {
		out.Message = authserver.AbandonedMessage
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}
