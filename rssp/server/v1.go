package server

import (
	"crypto"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/csctoken/csctoken/csc"
)

// routesV1 serves CSC API v1.0.4.0 under /csc/v1/ for deployed v1 clients
// (pyHanko, Laverca, SetaPDF): the v2 cores behind the v1 wire shapes of
// csc/v1.go. auth/login, auth/revoke, signHash's answer and timestamp have
// the same shape in both versions.
func (s *Server) routesV1(r chi.Router) {
	r.Get("/info", s.infoV1)
	r.Post("/info", s.infoV1)
	r.Post("/auth/login", s.login)
	r.With(s.authenticated).Post("/auth/revoke", s.revoke)
	r.Group(func(r chi.Router) {
		r.Use(s.authenticated)
		r.Post("/credentials/list", v1(s, func(q csc.CredentialsListRequestV1) (csc.CredentialsListRequest, error) {
			return q.V2(), nil
		}, s.credentialsList, func(status int, body any) (int, any, error) {
			return status, body.(csc.CredentialsListResponse).V1(), nil
		}))
		r.Post("/credentials/info", v1(s, func(q csc.CredentialsInfoRequest) (csc.CredentialsInfoRequest, error) {
			q.AuthInfo = true // v1 always describes PIN and OTP
			return q, nil
		}, s.credentialsInfo, func(status int, body any) (int, any, error) {
			return status, body.(csc.CredentialInfo).V1(), nil
		}))
		r.Post("/credentials/authorize", v1(s, func(q csc.AuthorizeRequestV1) (csc.AuthorizeRequest, error) {
			alg, err := hashAlgoOf(q.Hash)
			return q.V2(nil, alg), err
		}, s.credentialsAuthorize, noHandleV1))
		r.Post("/credentials/extendTransaction", v1(s, func(q csc.ExtendTransactionRequestV1) (csc.ExtendTransactionRequest, error) {
			alg, err := hashAlgoOf(q.Hash)
			return q.V2(alg), err
		}, s.extendTransaction, noHandleV1))
		r.Post("/credentials/sendOTP", v1(s, func(q csc.SendOTPRequestV1) (csc.GetChallengeRequest, error) {
			return q.V2(nil), nil
		}, s.getChallenge, nil))
		r.Post("/signatures/signHash", v1(s, func(q csc.SignHashRequestV1) (csc.SignHashRequest, error) {
			return q.V2(), nil
		}, s.signHash, nil))
		r.Post("/signatures/timestamp", s.timestamp)
	})
}

func (s *Server) infoV1(w http.ResponseWriter, r *http.Request) {
	var req csc.InfoRequest
	if r.Method == http.MethodPost && !s.decode(w, r, &req) {
		return
	}
	i := s.infoResponse()
	v := i.V1()
	v.Specs = csc.SpecV1
	writeJSON(w, v)
}

// noHandleV1 refuses a 202 (out-of-band approval), which v1 cannot express.
func noHandleV1(status int, body any) (int, any, error) {
	if status == http.StatusAccepted {
		return 0, nil, badReq("This credential needs an out-of-band approval, which only CSC API v2 can carry (credentials/authorizeCheck)")
	}
	return status, body, nil
}

// hashAlgoOf infers v1's missing hash algorithm from the digest length.
func hashAlgoOf(hashes []csc.Bytes) (string, error) {
	if len(hashes) == 0 {
		return "", nil
	}
	var h crypto.Hash
	switch len(hashes[0]) {
	case 32:
		h = crypto.SHA256
	case 48:
		h = crypto.SHA384
	case 64:
		h = crypto.SHA512
	default:
		return "", badReq("hash is %d bytes long: not a SHA-256, SHA-384 or SHA-512 digest", len(hashes[0]))
	}
	return csc.HashOID(h), nil
}
