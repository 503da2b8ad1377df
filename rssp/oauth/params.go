package oauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
)

// RAR types of the CSC credential authorization (docs/mapping.md, "CSC notes").
const (
	RARTypeCredential   = "credential"
	RARTypeCredentialV2 = "https://cloudsignatureconsortium.org/2025/credential"
)

// AuthorizationDetail is one element of authorization_details (RFC 9396)
// for a CSC credential; unknown members are ignored.
type AuthorizationDetail struct {
	Type               string           `json:"type"`
	CredentialID       string           `json:"credentialID,omitempty"`
	SignatureQualifier string           `json:"signatureQualifier,omitempty"`
	DocumentDigests    []DocumentDigest `json:"documentDigests,omitempty"`
	HashAlgorithmOID   string           `json:"hashAlgorithmOID,omitempty"`
	NumSignatures      int              `json:"numSignatures,omitempty"` // v2.2
	Locations          []string         `json:"locations,omitempty"`
}

// DocumentDigest is one hash to sign with its label.
type DocumentDigest struct {
	Hash     string `json:"hash"` // base64, either alphabet
	Label    string `json:"label,omitempty"`
	HashType string `json:"hashType,omitempty"` // v2.2, default DTBSR
}

const (
	maxDetailsBytes = 64 << 10
	maxLabel        = 200
)

func problem(kind error, format string, args ...any) error {
	return &service.Problem{Kind: kind, Description: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return problem(service.ErrInvalidRequest, format, args...)
}

// single returns the value of a parameter that may appear at most once
// (RFC 6749 §3.1, §3.2); an empty value counts as absent.
func single(v url.Values, name string) (string, error) {
	switch vs := v[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", invalid("Parameter %s is repeated", name)
	}
}

// authParams are the parameters parseAuthRequest reads.
var authParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
	"request_uri", "request", "response_mode", "authorization_details", "credentialID", "signatureQualifier",
	"numSignatures", "hashes", "hashAlgorithmOID", "description", "lang", "clientData", "account_token",
}

// parseAuthRequest reads an authorization request from a query or a pushed
// form: the OAuth2 parameters, PKCE, and the credential scope's parameters
// from CSC query parameters or authorization_details. Unknown parameters are
// ignored (RFC 6749 §3.1).
func parseAuthRequest(v url.Values) (r authserver.AuthRequest, requestURI string, err error) {
	p := map[string]string{}
	for _, name := range authParams {
		if p[name], err = single(v, name); err != nil {
			return r, "", err
		}
	}
	r = authserver.AuthRequest{
		ClientID: p["client_id"], ResponseType: p["response_type"], RedirectURI: p["redirect_uri"],
		State: p["state"], Scope: p["scope"], CodeChallenge: p["code_challenge"],
		CodeChallengeMethod: p["code_challenge_method"], Description: p["description"],
	}
	if p["request"] != "" {
		return r, "", invalid("Request objects (request) are not supported; push the request (oauth2/pushed_authorize)")
	}
	if m := p["response_mode"]; m != "" && m != "query" {
		return r, "", invalid("response_mode must be query")
	}
	r.CredentialID, r.SignatureQualifier, r.HashAlgorithm = p["credentialID"], p["signatureQualifier"], p["hashAlgorithmOID"]
	if n := p["numSignatures"]; n != "" {
		if r.NumSignatures, err = strconv.Atoi(n); err != nil || r.NumSignatures < 1 {
			return r, "", invalid("Invalid parameter numSignatures: a positive integer")
		}
	}
	if h := p["hashes"]; h != "" {
		for i, s := range strings.Split(h, ",") {
			d, err := csc.DecodeBase64(s)
			if err != nil || len(d) == 0 {
				return r, "", invalid("Invalid parameter hashes: hash %d is not base64url", i)
			}
			r.Hashes = append(r.Hashes, d)
		}
	}
	if d := p["authorization_details"]; d != "" {
		if r.CredentialID != "" || r.SignatureQualifier != "" || r.NumSignatures != 0 || r.Hashes != nil || r.HashAlgorithm != "" {
			return r, "", invalid("Use either authorization_details or the parameters credentialID, numSignatures, hashes and hashAlgorithmOID")
		}
		if err := parseDetails([]byte(d), &r); err != nil {
			return r, "", err
		}
	}
	return r, p["request_uri"], nil
}

// parseDetails reads authorization_details: one credential authorization.
func parseDetails(raw []byte, r *authserver.AuthRequest) error {
	bad := func(format string, args ...any) error {
		return problem(authserver.ErrInvalidAuthorizationDetails, format, args...)
	}
	if len(raw) > maxDetailsBytes {
		return bad("authorization_details is larger than %d bytes", maxDetailsBytes)
	}
	// csc.Decode refuses repeated member names and trailing data; it wants
	// an object, so the array goes inside one.
	var wrap struct {
		D []json.RawMessage `json:"d"`
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '[' {
		return bad("authorization_details is not a JSON array")
	}
	if err := csc.Decode(append(append([]byte(`{"d":`), raw...), '}'), &wrap); err != nil {
		return bad("authorization_details: %v", err)
	}
	var ds []AuthorizationDetail
	if err := json.Unmarshal(raw, &ds); err != nil {
		return bad("authorization_details: %v", err)
	}
	if len(ds) != 1 {
		return bad("authorization_details must hold exactly one credential authorization")
	}
	d := ds[0]
	switch d.Type {
	case RARTypeCredential, RARTypeCredentialV2:
	case "":
		return bad("authorization_details: missing type")
	default:
		return bad("authorization_details: unknown type %q (credential or %s)", d.Type, RARTypeCredentialV2)
	}
	if len(d.DocumentDigests) == 0 {
		return bad("authorization_details: documentDigests is required")
	}
	if d.HashAlgorithmOID == "" {
		return bad("authorization_details: hashAlgorithmOID is required")
	}
	for i, dd := range d.DocumentDigests {
		h, err := csc.DecodeBase64(dd.Hash)
		if err != nil || len(h) == 0 {
			return bad("authorization_details: documentDigests[%d].hash is not base64", i)
		}
		if len(dd.Label) > maxLabel || !utf8.ValidString(dd.Label) ||
			strings.ContainsFunc(dd.Label, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return bad("authorization_details: documentDigests[%d].label: at most %d printable characters", i, maxLabel)
		}
		r.Hashes = append(r.Hashes, h)
		r.Labels = append(r.Labels, dd.Label)
	}
	r.CredentialID, r.SignatureQualifier = d.CredentialID, d.SignatureQualifier
	r.HashAlgorithm, r.NumSignatures = d.HashAlgorithmOID, d.NumSignatures
	r.Details = bytes.Clone(raw)
	return nil
}

// echoDetails returns authorization_details as received with the resolved
// credentialID set in each element, for the token response (RFC 9396 §7).
func echoDetails(raw []byte, credentialID string) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var ds []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ds); err != nil {
		return nil, fmt.Errorf("authorization_details to echo: %w", err)
	}
	id, err := json.Marshal(credentialID)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		d["credentialID"] = id
	}
	return json.Marshal(ds)
}
