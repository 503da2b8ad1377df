package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	var req csc.InfoRequest
	if r.Method == http.MethodPost && !s.decode(w, r, &req) {
		return
	}
	writeJSON(w, s.infoResponse())
}

// infoResponse is the v2 answer of info.
func (s *Server) infoResponse() csc.InfoResponse {
	i := s.opt.Info
	authType, oauth2, issuer := []string{"basic"}, "", ""
	switch {
	case s.opt.ExternalIssuer != "":
		authType, issuer = append(authType, "oauth2code"), s.opt.ExternalIssuer
	case s.opt.OAuth != nil:
		authType, oauth2 = append(authType, "oauth2code", "oauth2client"), s.opt.OAuth.BaseURL()
	}
	return csc.InfoResponse{
		Specs:                     csc.SpecV2,
		Name:                      i.Name,
		Logo:                      i.Logo,
		Region:                    i.Region,
		Lang:                      i.Lang,
		Description:               i.Description,
		AuthType:                  authType,
		OAuth2:                    oauth2,
		OAuth2Issuer:              issuer,
		AsynchronousOperationMode: s.svc.HasPending(),
		Methods:                   s.methods(),
		SignAlgorithms:            &csc.SignAlgorithms{Algos: service.SupportedSignAlgos()},
		SignatureFormats:          &csc.SignatureFormats{Formats: []string{}},
		ConformanceLevels:         []string{},
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req csc.LoginRequest
	if !s.decode(w, r, &req) {
		return
	}
	user, pass, present, ok := basicAuth(r)
	var tok service.Tokens
	var err error
	switch {
	case present && !ok:
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidToken, Description: "Malformed Authorization header (HTTP Basic expected)"})
		return
	case ok:
		tok, err = s.svc.Login(r.Context(), user, pass, req.RememberMe)
	case req.RefreshToken != "":
		tok, err = s.svc.Refresh(r.Context(), req.RefreshToken)
	default:
		w.Header().Set("WWW-Authenticate", `Basic realm="csc"`)
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidToken, Description: "Missing Authorization header (HTTP Basic) or refresh_token"})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, csc.LoginResponse{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		TokenType: "Bearer", ExpiresIn: int64(tok.ExpiresIn.Seconds())})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	var req csc.RevokeRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := s.svc.Revoke(r.Context(), principal(r), req.Token, req.TokenTypeHint); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// A core is one CSC method on the v2 wire types: the v2 route decodes into
// its request type directly, the v1 route translates v1 → v2 before and
// v2 → v1 after. One code path, two wire shapes.
type core[Req any] func(r *http.Request, req Req) (status int, body any, err error)

// v2 binds a core to the v2 wire.
func v2[Req any](s *Server, c core[Req]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if !s.decode(w, r, &req) {
			return
		}
		s.reply(w, r)(c(r, req))
	}
}

// v1 binds a core to the v1 wire: in translates the decoded v1 request,
// out (optional) the v2 answer.
func v1[ReqV1, Req any](s *Server, in func(ReqV1) (Req, error), c core[Req], out func(status int, body any) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var reqV1 ReqV1
		if !s.decode(w, r, &reqV1) {
			return
		}
		req, err := in(reqV1)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status, body, err := c(r, req)
		if err == nil && out != nil {
			status, body, err = out(status, body)
		}
		s.reply(w, r)(status, body, err)
	}
}

// reply writes a core's result.
func (s *Server) reply(w http.ResponseWriter, r *http.Request) func(int, any, error) {
	return func(status int, body any, err error) {
		switch {
		case err != nil:
			s.writeError(w, r, err)
		case status == http.StatusNoContent:
			w.WriteHeader(status)
		default:
			writeJSONStatus(w, status, body)
		}
	}
}

func ok(body any) (int, any, error) { return http.StatusOK, body, nil }

func badReq(format string, args ...any) error {
	return &service.Problem{Kind: service.ErrInvalidRequest, Description: fmt.Sprintf(format, args...)}
}

func (s *Server) credentialsList(r *http.Request, req csc.CredentialsListRequest) (int, any, error) {
	p := principal(r)
	if req.UserID != "" && req.UserID != p.UserID && req.UserID != p.UserName {
		return 0, nil, badReq("userID parameter MUST be null for a user-specific token")
	}
	if req.MaxResults < 0 {
		return 0, nil, badReq("Invalid parameter maxResults")
	}
	ids, infos, err := s.svc.ListCredentials(r.Context(), p, req.CredentialInfo, req.OnlyValid,
		service.InfoOptions{Certificates: req.Certificates, CertInfo: req.CertInfo, AuthInfo: req.AuthInfo,
			SignatureQualifier: req.SignatureQualifier})
	if err != nil {
		return 0, nil, err
	}
	resp := csc.CredentialsListResponse{CredentialIDs: ids, CredentialInfos: infos, OnlyValid: req.OnlyValid}
	// Paging (v1's maxResults/pageToken): the token is the last ID given.
	if req.PageToken != "" {
		i := slices.Index(ids, req.PageToken)
		if i < 0 {
			return 0, nil, badReq("Invalid parameter pageToken")
		}
		resp.CredentialIDs = ids[i+1:]
		if infos != nil {
			resp.CredentialInfos = infos[i+1:]
		}
	}
	if req.MaxResults > 0 && len(resp.CredentialIDs) > req.MaxResults {
		resp.CredentialIDs = resp.CredentialIDs[:req.MaxResults]
		if resp.CredentialInfos != nil {
			resp.CredentialInfos = resp.CredentialInfos[:req.MaxResults]
		}
		resp.NextPageToken = resp.CredentialIDs[req.MaxResults-1]
	}
	return ok(resp)
}

func (s *Server) credentialsInfo(r *http.Request, req csc.CredentialsInfoRequest) (int, any, error) {
	info, err := s.svc.CredentialInfo(r.Context(), principal(r), req.CredentialID,
		service.InfoOptions{Certificates: req.Certificates, CertInfo: req.CertInfo, AuthInfo: req.AuthInfo})
	if err != nil {
		return 0, nil, err
	}
	return ok(info)
}

func (s *Server) credentialsAuthorize(r *http.Request, req csc.AuthorizeRequest) (int, any, error) {
	sad, err := s.svc.Authorize(r.Context(), principal(r), service.AuthorizeRequest{
		CredentialID: req.CredentialID, NumSignatures: req.NumSignatures, Hashes: csc.Raw(req.Hashes),
		HashAlgorithm: req.HashAlgorithmOID, AuthData: req.AuthData, Description: req.Description,
	})
	return sadReply(sad, err)
}

// sadReply answers 200 with a SAD or 202 with a handle.
func sadReply(sad service.SAD, err error) (int, any, error) {
	switch {
	case err != nil:
		return 0, nil, err
	case sad.Handle != "":
		return http.StatusAccepted, csc.AuthorizeResponse{Handle: sad.Handle}, nil
	}
	return ok(csc.AuthorizeResponse{SAD: sad.Value, ExpiresIn: int64(sad.ExpiresIn.Seconds())})
}

func (s *Server) authorizeCheck(r *http.Request, req csc.AuthorizeCheckRequest) (int, any, error) {
	return sadReply(s.svc.AuthorizeCheck(r.Context(), principal(r), req.Handle))
}

func (s *Server) getChallenge(r *http.Request, req csc.GetChallengeRequest) (int, any, error) {
	if err := s.svc.GetChallenge(r.Context(), principal(r), req.CredentialID, req.AuthObjectID); err != nil {
		return 0, nil, err
	}
	// The code travels out of band: nothing to return (docs/mapping.md, "CSC notes":
	// 204, as v1's sendOTP).
	return http.StatusNoContent, nil, nil
}

func (s *Server) extendTransaction(r *http.Request, req csc.ExtendTransactionRequest) (int, any, error) {
	return sadReply(s.svc.ExtendTransaction(r.Context(), principal(r), req.CredentialID, req.SAD, csc.Raw(req.Hashes), req.HashAlgorithmOID))
}

func (s *Server) signHash(r *http.Request, req csc.SignHashRequest) (int, any, error) {
	async := false
	switch strings.ToUpper(req.OperationMode) {
	case "", csc.OperationSync:
		if req.ValidityPeriod != 0 || req.ResponseURI != "" {
			return 0, nil, badReq("validity_period and response_uri are only for operationMode A")
		}
	case csc.OperationAsync:
		if !s.svc.HasPending() {
			return 0, nil, badReq("operationMode A (asynchronous) is not supported by this service")
		}
		if req.ResponseURI != "" {
			return 0, nil, badReq("response_uri is not supported: poll with signatures/signPolling")
		}
		async = true
	default:
		return 0, nil, badReq("Invalid parameter operationMode (S or A)")
	}
	if req.Hashes == nil {
		return 0, nil, badReq("Missing parameter hashes")
	}
	sr := service.SignRequest{
		CredentialID: req.CredentialID, SAD: req.SAD, Hashes: csc.Raw(req.Hashes),
		HashAlgorithm: req.HashAlgorithmOID, SignAlgo: req.SignAlgo, SignAlgoParams: req.SignAlgoParams,
		SignatureQualifier: req.SignatureQualifier,
	}
	if async {
		if req.ValidityPeriod < 0 {
			return 0, nil, badReq("Invalid parameter validity_period")
		}
		id, err := s.svc.SignHashAsync(r.Context(), principal(r), sr, time.Duration(req.ValidityPeriod)*time.Millisecond)
		if err != nil {
			return 0, nil, err
		}
		return ok(csc.SignHashResponse{ResponseID: id})
	}
	sigs, err := s.svc.SignHash(r.Context(), principal(r), sr)
	if err != nil {
		return 0, nil, err
	}
	return ok(csc.SignHashResponse{Signatures: csc.BytesList(sigs)})
}

func (s *Server) signPolling(r *http.Request, req csc.SignPollingRequest) (int, any, error) {
	sigs, err := s.svc.SignPolling(r.Context(), principal(r), req.RequestID)
	if errors.Is(err, service.ErrPending) {
		return http.StatusAccepted, csc.Error{Code: csc.ErrAcceptedRequest, Description: "The signature is not ready yet; poll again"}, nil
	}
	if err != nil {
		return 0, nil, err
	}
	return ok(csc.SignHashResponse{Signatures: csc.BytesList(sigs)})
}

func (s *Server) timestamp(w http.ResponseWriter, r *http.Request) {
	var req csc.TimestampRequest
	if !s.decode(w, r, &req) {
		return
	}
	tok, err := s.svc.Timestamp(r.Context(), principal(r), req.Hash, req.HashAlgo, req.Nonce)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, csc.TimestampResponse{Timestamp: tok})
}

func (s *Server) notImplemented(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, &service.Problem{Kind: service.ErrNotImplemented,
		Description: methodName(r) + " is not served by this service"})
}
