package cscclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/csctoken/csctoken/csc"
)

var (
	mInfo           = &methodSpec{name: "info", idempotent: true, noAuth: true}
	mLogin          = &methodSpec{name: "auth/login", sensitive: true, noAuth: true}
	mRevoke         = &methodSpec{name: "auth/revoke", idempotent: true, emptyOK: true}
	mList           = &methodSpec{name: "credentials/list", idempotent: true}
	mCredInfo       = &methodSpec{name: "credentials/info", idempotent: true}
	mAuthorize      = &methodSpec{name: "credentials/authorize", sensitive: true}
	mAuthorizeCheck = &methodSpec{name: "credentials/authorizeCheck", sensitive: true, idempotent: true}
	mGetChallenge   = &methodSpec{name: csc.MethodGetChallenge, emptyOK: true}
	mExtend         = &methodSpec{name: "credentials/extendTransaction", sensitive: true}
	mSignHash       = &methodSpec{name: "signatures/signHash", sameSADRetry: true}
	mSignPolling    = &methodSpec{name: "signatures/signPolling", idempotent: true}
	mTimestamp      = &methodSpec{name: "signatures/timestamp", idempotent: true}
)

func v1Path(v2 string) (string, bool) { return csc.MethodV1(v2) }

// canonicalAuthTypes maps info.authType values, compared without case, to
// their spelling in the spec ("tls" → "TLS").
var canonicalAuthTypes = map[string]string{
	"external": "external", "tls": "TLS", "basic": "basic", "digest": "digest",
	"oauth2code": "oauth2code", "oauth2implicit": "oauth2implicit", "oauth2client": "oauth2client",
}

// Info calls info (no authentication). req may be nil. A server that
// refuses POST with 405 is asked again with GET (as CZERTAINLY serves it).
func (cl *Client) Info(ctx context.Context, req *csc.InfoRequest) (*csc.InfoResponse, error) {
	if req == nil {
		req = &csc.InfoRequest{}
	}
	res, err := cl.do(ctx, call{spec: mInfo, in: req})
	if e := (*Error)(nil); errors.As(err, &e) && e.StatusCode == http.StatusMethodNotAllowed {
		res, err = cl.do(ctx, call{spec: mInfo, get: true})
	}
	if err != nil {
		return nil, err
	}
	return decodeInfo(cl.version, res)
}

func decodeInfo(v Version, res *result) (*csc.InfoResponse, error) {
	var out csc.InfoResponse
	if v == V1 {
		var in csc.InfoResponseV1
		if err := decode(mInfo, res, &in); err != nil {
			return nil, err
		}
		out = in.V2()
	} else if err := decode(mInfo, res, &out); err != nil {
		return nil, err
	}
	for i, t := range out.AuthType {
		if c, ok := canonicalAuthTypes[strings.ToLower(strings.TrimSpace(t))]; ok {
			out.AuthType[i] = c
		}
	}
	return &out, nil
}

// Login calls auth/login. With a username, it authenticates with HTTP Basic
// (username, password); without, req.RefreshToken must be set and is the
// only credential sent. req may be nil.
func (cl *Client) Login(ctx context.Context, username, password string, req *csc.LoginRequest) (*csc.LoginResponse, error) {
	in := csc.LoginRequest{}
	if req != nil {
		in = *req
	}
	c := call{spec: mLogin, in: in}
	switch {
	case username != "":
		if strings.Contains(username, ":") {
			return nil, localError(mLogin.name, ErrInvalidArgument, "user name with a colon cannot travel in HTTP Basic")
		}
		c.basic = username + ":" + password
	case in.RefreshToken == "":
		return nil, localError(mLogin.name, ErrInvalidArgument, "neither user name nor refresh token")
	}
	res, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	var out csc.LoginResponse
	if err := decode(mLogin, res, &out); err != nil {
		return nil, err
	}
	if out.AccessToken == "" {
		return nil, badResponse(mLogin, res, "no access_token")
	}
	return &out, nil
}

// LoginToken logs in with user name and password (Basic) and returns the
// token; rememberMe asks for a refresh token.
func (cl *Client) LoginToken(ctx context.Context, username, password string, rememberMe bool) (*Token, error) {
	r, err := cl.Login(ctx, username, password, &csc.LoginRequest{RememberMe: rememberMe})
	if err != nil {
		return nil, err
	}
	return tokenFromLogin(r), nil
}

// RefreshToken gets a new access token with a refresh token (auth/login
// with refresh_token and rememberMe, no Basic header). It is the Refresh of
// a SessionConfig for basic service authentication.
func (cl *Client) RefreshToken(ctx context.Context, refreshToken string) (*Token, error) {
	r, err := cl.Login(ctx, "", "", &csc.LoginRequest{RefreshToken: refreshToken, RememberMe: true})
	if err != nil {
		return nil, err
	}
	return tokenFromLogin(r), nil
}

// NewBasicSession returns a Session for auth/login with user name and
// password, keyed by this client's base URL and user, refreshing through
// auth/login. password, if not nil, is asked when no stored token works
// (nil: ErrLoginRequired then); store may be nil.
func (cl *Client) NewBasicSession(user string, store SecretStore, password func(ctx context.Context) (string, error)) *Session {
	cfg := SessionConfig{
		Service: cl.BaseURL(),
		User:    user,
		Refresh: cl.RefreshToken,
		Store:   store,
		Logger:  cl.log,
	}
	if password != nil {
		cfg.Login = func(ctx context.Context) (*Token, error) {
			pw, err := password(ctx)
			if err != nil {
				return nil, err
			}
			return cl.LoginToken(ctx, user, pw, true)
		}
	}
	return NewSession(cfg)
}

// Logout revokes s's tokens at the service (best effort: the refresh token,
// then the access token) and forgets them. The error is the first one met;
// the tokens are forgotten locally in any case.
func (cl *Client) Logout(ctx context.Context, s *Session) error {
	var first error
	t, err := s.Token(ctx) // a live access token to authenticate the revocations
	if err != nil {
		t, _ = s.Current(ctx)
	}
	if t != nil && t.AccessToken != "" {
		// Both revocations carry this access token explicitly, so that the
		// first does not make the second refresh.
		rctx := WithCredentialToken(ctx, t.AccessToken)
		if t.RefreshToken != "" {
			if err := cl.Revoke(rctx, &csc.RevokeRequest{Token: t.RefreshToken, TokenTypeHint: "refresh_token"}); err != nil {
				first = err
			}
		}
		// Revoking the refresh token may have revoked the access token with
		// it (RFC 7009 §2.1): a 401 here means it is gone already.
		err := cl.Revoke(rctx, &csc.RevokeRequest{Token: t.AccessToken, TokenTypeHint: "access_token"})
		if err != nil && first == nil && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpiredToken) {
			first = err
		}
	}
	if err := s.Clear(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

// Revoke calls auth/revoke (answered 200 or 204).
func (cl *Client) Revoke(ctx context.Context, req *csc.RevokeRequest) error {
	if req == nil || req.Token == "" {
		return localError(mRevoke.name, ErrInvalidArgument, "no token to revoke")
	}
	_, err := cl.do(ctx, call{spec: mRevoke, in: req})
	return err
}

// lenientString is a JSON string that also accepts a number (SCAL: 2).
type lenientString string

func (s *lenientString) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err == nil {
		*s = lenientString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("SCAL: not a string or number")
	}
	*s = lenientString(n.String())
	return nil
}

// credInfoWire decodes a v2 credential info, with a lenient SCAL.
type credInfoWire struct {
	csc.CredentialInfo
	SCAL lenientString `json:"SCAL"`
}

func (w credInfoWire) value() csc.CredentialInfo {
	ci := w.CredentialInfo
	ci.SCAL = string(w.SCAL)
	normalizeCredInfo(&ci)
	return ci
}

// credInfoV1Wire decodes a v1 credential info, with a lenient SCAL.
type credInfoV1Wire struct {
	csc.CredentialInfoV1
	SCAL lenientString `json:"SCAL"`
}

func (w credInfoV1Wire) value() csc.CredentialInfo {
	v1 := w.CredentialInfoV1
	v1.SCAL = string(w.SCAL)
	ci := v1.V2()
	normalizeCredInfo(&ci)
	return ci
}

// normalizeCredInfo lower-cases the enumerations that servers spell in
// varying case.
func normalizeCredInfo(ci *csc.CredentialInfo) {
	ci.Key.Status = strings.ToLower(ci.Key.Status)
	if ci.Cert != nil {
		ci.Cert.Status = strings.ToLower(ci.Cert.Status)
	}
	if ci.Auth != nil {
		switch m := strings.ToLower(ci.Auth.Mode); m {
		case csc.AuthModeExplicit, csc.AuthModeImplicit:
			ci.Auth.Mode = m
		case "oauth2code":
			ci.Auth.Mode = csc.AuthModeOAuth2Code
		}
	}
}

// ListCredentials calls credentials/list and returns one page. In v2,
// maxResults is not sent and pageToken only when set (v2 has no paging; a
// server that pages anyway is followed). In v1, the v2-only parameters are
// not sent. With CredentialInfo, CredentialInfos holds one info per
// credential ID, in the same order: the client asks credentials/info for
// those the listing left out (every one in v1, which has no infos in the
// listing; those a v2 server omitted). This is the one such fan-out.
func (cl *Client) ListCredentials(ctx context.Context, req *csc.CredentialsListRequest) (*csc.CredentialsListResponse, error) {
	if req == nil {
		req = &csc.CredentialsListRequest{}
	}
	var (
		out *csc.CredentialsListResponse
		err error
	)
	if cl.version == V1 {
		out, err = cl.listV1(ctx, req)
	} else {
		in := *req
		in.MaxResults = 0
		var res *result
		if res, err = cl.do(ctx, call{spec: mList, in: in}); err == nil {
			out, err = decodeList(res)
		}
	}
	if err != nil || !req.CredentialInfo {
		return out, err
	}
	return out, cl.completeInfos(ctx, req, out)
}

// completeInfos makes out.CredentialInfos one info per credential ID, in
// order, asking credentials/info (at most 4 at a time) for the IDs the
// listing gave no info for. A listing of infos without IDs gives the IDs.
func (cl *Client) completeInfos(ctx context.Context, req *csc.CredentialsListRequest, out *csc.CredentialsListResponse) error {
	byID := make(map[string]csc.CredentialInfo, len(out.CredentialInfos))
	for _, ci := range out.CredentialInfos {
		if ci.CredentialID != "" {
			byID[ci.CredentialID] = ci
		}
	}
	if len(out.CredentialIDs) == 0 {
		for _, ci := range out.CredentialInfos {
			if ci.CredentialID != "" {
				out.CredentialIDs = append(out.CredentialIDs, ci.CredentialID)
			}
		}
	}
	infos := make([]csc.CredentialInfo, len(out.CredentialIDs))
	var missing []int
	for i, id := range out.CredentialIDs {
		if ci, ok := byID[id]; ok {
			infos[i] = ci
		} else {
			missing = append(missing, i)
		}
	}
	errs := make([]error, len(missing))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for j, i := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[j] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			ci, err := cl.CredentialInfo(ctx, &csc.CredentialsInfoRequest{
				CredentialID: out.CredentialIDs[i], Certificates: req.Certificates, CertInfo: req.CertInfo,
				AuthInfo: req.AuthInfo, Lang: req.Lang, ClientData: req.ClientData,
			})
			if err != nil {
				errs[j] = err
				return
			}
			infos[i] = *ci
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				err = &Error{Method: mCredInfo.name, Err: err} // the context's error
			}
			return err
		}
	}
	out.CredentialInfos = infos
	return nil
}

func decodeList(res *result) (*csc.CredentialsListResponse, error) {
	var w struct {
		csc.CredentialsListResponse
		CredentialInfos []credInfoWire `json:"credentialInfos"`
	}
	if err := decode(mList, res, &w); err != nil {
		return nil, err
	}
	out := w.CredentialsListResponse
	out.CredentialInfos = nil
	for _, ci := range w.CredentialInfos {
		out.CredentialInfos = append(out.CredentialInfos, ci.value())
	}
	if out.CredentialIDs == nil {
		out.CredentialIDs = []string{}
	}
	return &out, nil
}

func (cl *Client) listV1(ctx context.Context, req *csc.CredentialsListRequest) (*csc.CredentialsListResponse, error) {
	res, err := cl.do(ctx, call{spec: mList, in: req.V1()})
	if err != nil {
		return nil, err
	}
	var in csc.CredentialsListResponseV1
	if err := decode(mList, res, &in); err != nil {
		return nil, err
	}
	out := in.V2()
	if out.CredentialIDs == nil {
		out.CredentialIDs = []string{}
	}
	return &out, nil
}

// maxPages bounds ListAllCredentials.
const maxPages = 1000

// ListAllCredentials calls ListCredentials until no nextPageToken comes back
// (v1 pages; v2 answers in one) and returns all the credentials.
func (cl *Client) ListAllCredentials(ctx context.Context, req *csc.CredentialsListRequest) (*csc.CredentialsListResponse, error) {
	in := csc.CredentialsListRequest{}
	if req != nil {
		in = *req
	}
	in.PageToken = ""
	all := &csc.CredentialsListResponse{CredentialIDs: []string{}}
	seen := map[string]bool{}
	for range maxPages {
		page, err := cl.ListCredentials(ctx, &in)
		if err != nil {
			return nil, err
		}
		all.CredentialIDs = append(all.CredentialIDs, page.CredentialIDs...)
		all.CredentialInfos = append(all.CredentialInfos, page.CredentialInfos...)
		all.OnlyValid = page.OnlyValid
		if page.NextPageToken == "" {
			return all, nil
		}
		if seen[page.NextPageToken] {
			return nil, badResponse(mList, nil, "nextPageToken repeats")
		}
		seen[page.NextPageToken] = true
		in.PageToken = page.NextPageToken
	}
	return nil, badResponse(mList, nil, "more than %d pages", maxPages)
}

// CredentialInfo calls credentials/info. The answer's CredentialID is set
// to the one asked. A missing auth object is tolerated (Auth nil); in v1,
// authMode, PIN and OTP become the auth object (csc.CredentialInfoV1.V2).
func (cl *Client) CredentialInfo(ctx context.Context, req *csc.CredentialsInfoRequest) (*csc.CredentialInfo, error) {
	if req == nil || req.CredentialID == "" {
		return nil, localError(mCredInfo.name, ErrInvalidArgument, "no credentialID")
	}
	res, err := cl.do(ctx, call{spec: mCredInfo, in: req})
	if err != nil {
		return nil, err
	}
	ci, err := decodeCredInfo(cl.version, res)
	if err != nil {
		return nil, err
	}
	ci.CredentialID = req.CredentialID
	return ci, nil
}

func decodeCredInfo(v Version, res *result) (*csc.CredentialInfo, error) {
	var ci csc.CredentialInfo
	if v == V1 {
		var w credInfoV1Wire
		if err := decode(mCredInfo, res, &w); err != nil {
			return nil, err
		}
		ci = w.value()
	} else {
		var w credInfoWire
		if err := decode(mCredInfo, res, &w); err != nil {
			return nil, err
		}
		ci = w.value()
	}
	return &ci, nil
}

// Authorize calls credentials/authorize. It answers a SAD (200), or, when the
// service authorizes out of band (202), a Handle for AuthorizeCheck or
// WaitAuthorization. Never retried once sent: a PIN try may have been used.
// In v1, authData entries go out as PIN and OTP (IDs "PIN" and "OTP", as
// CredentialInfo's v1 translation names them).
func (cl *Client) Authorize(ctx context.Context, req *csc.AuthorizeRequest) (*csc.AuthorizeResponse, error) {
	if req == nil || req.CredentialID == "" {
		return nil, localError(mAuthorize.name, ErrInvalidArgument, "no credentialID")
	}
	if req.NumSignatures < 1 {
		return nil, localError(mAuthorize.name, ErrInvalidArgument, "numSignatures %d < 1", req.NumSignatures)
	}
	var in any = req
	if cl.version == V1 {
		v1, err := req.V1(nil)
		if err != nil {
			return nil, localError(mAuthorize.name, ErrInvalidArgument, "%w", err)
		}
		in = v1
	}
	res, err := cl.do(ctx, call{spec: mAuthorize, in: in})
	if err != nil {
		return nil, err
	}
	var out csc.AuthorizeResponse
	if len(strings.TrimSpace(string(res.body))) > 0 {
		if err := decode(mAuthorize, res, &out); err != nil {
			return nil, err
		}
	}
	switch {
	case res.status == http.StatusAccepted && out.Handle == "":
		return nil, badResponse(mAuthorize, res, "202 without handle")
	case res.status == http.StatusAccepted:
		out.SAD = ""
	case out.SAD == "":
		return nil, badResponse(mAuthorize, res, "no SAD")
	}
	return &out, nil
}

// AuthorizeCheck calls credentials/authorizeCheck (v2 only): the SAD when
// the out-of-band authorization is done, an error matching ErrPending while
// it is under way (202), ErrAccessDenied when the user denied it.
func (cl *Client) AuthorizeCheck(ctx context.Context, req *csc.AuthorizeCheckRequest) (*csc.AuthorizeResponse, error) {
	if req == nil || req.Handle == "" {
		return nil, localError(mAuthorizeCheck.name, ErrInvalidArgument, "no handle")
	}
	res, err := cl.do(ctx, call{spec: mAuthorizeCheck, in: req})
	if err != nil {
		return nil, err
	}
	if res.status == http.StatusAccepted {
		return nil, &Error{Method: mAuthorizeCheck.name, StatusCode: res.status, kinds: []error{ErrPending}}
	}
	var out csc.AuthorizeResponse
	if err := decode(mAuthorizeCheck, res, &out); err != nil {
		return nil, err
	}
	if out.SAD == "" {
		return nil, badResponse(mAuthorizeCheck, res, "no SAD")
	}
	return &out, nil
}

// GetChallenge calls credentials/getChallenge (v1: credentials/sendOTP).
// An out-of-band challenge (200 or 201 or 204 without body) answers an
// empty Challenge. Never retried once sent (it may send an SMS).
func (cl *Client) GetChallenge(ctx context.Context, req *csc.GetChallengeRequest) (*csc.GetChallengeResponse, error) {
	if req == nil || req.CredentialID == "" {
		return nil, localError(mGetChallenge.name, ErrInvalidArgument, "no credentialID")
	}
	var in any = req
	if cl.version == V1 {
		in = req.V1()
	} else if req.AuthObjectID == "" {
		return nil, localError(mGetChallenge.name, ErrInvalidArgument, "no authObjectID")
	}
	res, err := cl.do(ctx, call{spec: mGetChallenge, in: in})
	if err != nil {
		return nil, err
	}
	var out csc.GetChallengeResponse
	if len(strings.TrimSpace(string(res.body))) > 0 && res.status != http.StatusNoContent {
		if err := decode(mGetChallenge, res, &out); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

// ExtendTransaction calls credentials/extendTransaction and returns the
// new SAD. Never retried once sent.
func (cl *Client) ExtendTransaction(ctx context.Context, req *csc.ExtendTransactionRequest) (*csc.AuthorizeResponse, error) {
	if req == nil || req.CredentialID == "" || req.SAD == "" {
		return nil, localError(mExtend.name, ErrInvalidArgument, "credentialID and SAD are required")
	}
	var in any = req
	if cl.version == V1 {
		in = req.V1()
	}
	res, err := cl.do(ctx, call{spec: mExtend, in: in})
	if err != nil {
		return nil, err
	}
	var out csc.AuthorizeResponse
	if err := decode(mExtend, res, &out); err != nil {
		return nil, err
	}
	if out.SAD == "" {
		return nil, badResponse(mExtend, res, "no SAD")
	}
	return &out, nil
}

// isECDSA reports whether a signature algorithm OID is ECDSA.
func isECDSA(oid string) bool {
	switch oid {
	case csc.OIDECDSAWithSHA256, csc.OIDECDSAWithSHA384, csc.OIDECDSAWithSHA512, csc.OIDECPublicKey,
		"1.2.840.10045.4.3.1", "1.2.840.10045.4.1": // ecdsa-with-SHA224, ecdsa-with-SHA1
		return true
	}
	return false
}

// SignHash calls signatures/signHash. In synchronous mode the answer holds
// one signature per hash, in order; ECDSA signatures are normalised to DER
// whether the server sent DER or raw r‖s (ECDSAToRaw gives the PKCS#11
// form). Never retried once sent, but for a refused connection. With
// WithCredentialToken the credential token is the Bearer (oauth2code). In v1
// the SAD is required and operationMode must be synchronous.
func (cl *Client) SignHash(ctx context.Context, req *csc.SignHashRequest) (*csc.SignHashResponse, error) {
	if req == nil || req.CredentialID == "" || len(req.Hashes) == 0 || req.SignAlgo == "" {
		return nil, localError(mSignHash.name, ErrInvalidArgument, "credentialID, hashes and signAlgo are required")
	}
	var in any = req
	if cl.version == V1 {
		v1, err := req.V1()
		if err != nil {
			return nil, localError(mSignHash.name, ErrInvalidArgument, "%w", err)
		}
		in = v1
	}
	res, err := cl.do(ctx, call{spec: mSignHash, in: in})
	if err != nil {
		return nil, err
	}
	async := req.OperationMode == csc.OperationAsync
	return decodeSignHash(mSignHash, res, len(req.Hashes), req.SignAlgo, async)
}

func decodeSignHash(spec *methodSpec, res *result, n int, signAlgo string, async bool) (*csc.SignHashResponse, error) {
	var out csc.SignHashResponse
	if err := decode(spec, res, &out); err != nil {
		return nil, err
	}
	if async && len(out.Signatures) == 0 {
		if out.ResponseID == "" {
			return nil, badResponse(spec, res, "neither signatures nor responseID")
		}
		return &out, nil
	}
	if n >= 0 && len(out.Signatures) != n {
		return nil, badResponse(spec, res, "%d signatures for %d hashes", len(out.Signatures), n)
	}
	if n < 0 && len(out.Signatures) == 0 {
		return nil, badResponse(spec, res, "no signatures")
	}
	for i, s := range out.Signatures {
		if len(s) == 0 {
			return nil, badResponse(spec, res, "signature %d is empty", i)
		}
		if isECDSA(signAlgo) {
			der, err := ECDSAToDER(s)
			if err != nil {
				return nil, badResponse(spec, res, "signature %d: %w", i, err)
			}
			out.Signatures[i] = der
		}
	}
	return &out, nil
}

// SignPolling calls signatures/signPolling (v2 only): the signatures of an
// asynchronous signHash, or an error matching ErrPending while not ready.
// signAlgo, when given, normalises ECDSA signatures as SignHash does.
func (cl *Client) SignPolling(ctx context.Context, req *csc.SignPollingRequest, signAlgo string) (*csc.SignHashResponse, error) {
	if req == nil || req.RequestID == "" {
		return nil, localError(mSignPolling.name, ErrInvalidArgument, "no requestID")
	}
	res, err := cl.do(ctx, call{spec: mSignPolling, in: req})
	if err != nil {
		return nil, err
	}
	if res.status == http.StatusAccepted {
		return nil, &Error{Method: mSignPolling.name, StatusCode: res.status, kinds: []error{ErrPending}}
	}
	return decodeSignHash(mSignPolling, res, -1, signAlgo, false)
}

// Timestamp calls signatures/timestamp.
func (cl *Client) Timestamp(ctx context.Context, req *csc.TimestampRequest) (*csc.TimestampResponse, error) {
	if req == nil || len(req.Hash) == 0 || req.HashAlgo == "" {
		return nil, localError(mTimestamp.name, ErrInvalidArgument, "hash and hashAlgo are required")
	}
	res, err := cl.do(ctx, call{spec: mTimestamp, in: req})
	if err != nil {
		return nil, err
	}
	var out csc.TimestampResponse
	if err := decode(mTimestamp, res, &out); err != nil {
		return nil, err
	}
	if len(out.Timestamp) == 0 {
		return nil, badResponse(mTimestamp, res, "no timestamp")
	}
	return &out, nil
}

// EncodeQueryHashes encodes hashes for a query string (oauth2/authorize's
// hashes, v1's hash): base64url without padding, comma-separated.
func EncodeQueryHashes(hashes [][]byte) string {
	parts := make([]string, len(hashes))
	for i, h := range hashes {
		parts[i] = base64.RawURLEncoding.EncodeToString(h)
	}
	return strings.Join(parts, ",")
}
