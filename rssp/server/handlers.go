package server

import (
	"net/http"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	var req csc.InfoRequest
	if r.Method == http.MethodPost && !s.decode(w, r, &req) {
		return
	}
	i := s.opt.Info
	writeJSON(w, csc.InfoResponse{
		Specs:                     csc.SpecV2,
		Name:                      i.Name,
		Logo:                      i.Logo,
		Region:                    i.Region,
		Lang:                      i.Lang,
		Description:               i.Description,
		AuthType:                  []string{"basic"},
		AsynchronousOperationMode: false,
		Methods:                   s.methods(),
		SignAlgorithms:            &csc.SignAlgorithms{Algos: service.SupportedSignAlgos()},
		SignatureFormats:          &csc.SignatureFormats{Formats: []string{}},
		ConformanceLevels:         []string{},
	})
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

func (s *Server) credentialsList(w http.ResponseWriter, r *http.Request) {
	var req csc.CredentialsListRequest
	if !s.decode(w, r, &req) {
		return
	}
	p := principal(r)
	if req.UserID != "" && req.UserID != p.UserID && req.UserID != p.UserName {
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidRequest, Description: "userID parameter MUST be null for a user-specific token"})
		return
	}
	ids, infos, err := s.svc.ListCredentials(r.Context(), p, req.CredentialInfo, req.OnlyValid,
		service.InfoOptions{Certificates: req.Certificates, CertInfo: req.CertInfo, AuthInfo: req.AuthInfo})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, csc.CredentialsListResponse{CredentialIDs: ids, CredentialInfos: infos, OnlyValid: req.OnlyValid})
}

func (s *Server) credentialsInfo(w http.ResponseWriter, r *http.Request) {
	var req csc.CredentialsInfoRequest
	if !s.decode(w, r, &req) {
		return
	}
	info, err := s.svc.CredentialInfo(r.Context(), principal(r), req.CredentialID,
		service.InfoOptions{Certificates: req.Certificates, CertInfo: req.CertInfo, AuthInfo: req.AuthInfo})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, info)
}

func (s *Server) credentialsAuthorize(w http.ResponseWriter, r *http.Request) {
	var req csc.AuthorizeRequest
	if !s.decode(w, r, &req) {
		return
	}
	sad, err := s.svc.Authorize(r.Context(), principal(r), service.AuthorizeRequest{
		CredentialID: req.CredentialID, NumSignatures: req.NumSignatures, Hashes: csc.Raw(req.Hashes),
		HashAlgorithm: req.HashAlgorithmOID, AuthData: req.AuthData, Description: req.Description,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, csc.AuthorizeResponse{SAD: sad.Value, ExpiresIn: int64(sad.ExpiresIn.Seconds())})
}

func (s *Server) extendTransaction(w http.ResponseWriter, r *http.Request) {
	var req csc.ExtendTransactionRequest
	if !s.decode(w, r, &req) {
		return
	}
	sad, err := s.svc.ExtendTransaction(r.Context(), principal(r), req.CredentialID, req.SAD, csc.Raw(req.Hashes), req.HashAlgorithmOID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, csc.AuthorizeResponse{SAD: sad.Value, ExpiresIn: int64(sad.ExpiresIn.Seconds())})
}

func (s *Server) signHash(w http.ResponseWriter, r *http.Request) {
	var req csc.SignHashRequest
	if !s.decode(w, r, &req) {
		return
	}
	switch strings.ToUpper(req.OperationMode) {
	case "", csc.OperationSync:
	case csc.OperationAsync:
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidRequest, Description: "operationMode A (asynchronous) is not supported by this service"})
		return
	default:
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidRequest, Description: "Invalid parameter operationMode (S or A)"})
		return
	}
	if req.Hashes == nil {
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidRequest, Description: "Missing parameter hashes"})
		return
	}
	sigs, err := s.svc.SignHash(r.Context(), principal(r), service.SignRequest{
		CredentialID: req.CredentialID, SAD: req.SAD, Hashes: csc.Raw(req.Hashes),
		HashAlgorithm: req.HashAlgorithmOID, SignAlgo: req.SignAlgo, SignAlgoParams: req.SignAlgoParams,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, csc.SignHashResponse{Signatures: csc.BytesList(sigs)})
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
		Description: strings.TrimPrefix(r.URL.Path, "/csc/v2/") + " is not served by this service"})
}
