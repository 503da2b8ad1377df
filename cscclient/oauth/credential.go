package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/cscclient"
)

// RARTypeCredential is the authorization_details type of a CSC credential
// authorization (CSC API v2.0, docs/mapping.md, "CSC notes").
const RARTypeCredential = "credential"

// CredentialRequest is what a credential-scope authorization covers: one
// signature batch with one credential.
type CredentialRequest struct {
	// CredentialID names the credential (required).
	CredentialID string
	// NumSignatures is the number of signatures authorized; zero means
	// len(Hashes), or 1 without hashes. With hashes it must equal
	// len(Hashes).
	NumSignatures int
	// Hashes are the digests to sign (required for SCAL 2 credentials),
	// with HashAlgorithmOID, the OID of their hash algorithm.
	Hashes           [][]byte
	HashAlgorithmOID string
	// Labels name the documents, one per hash, for the consent page.
	// With labels the request is sent as RFC 9396 authorization_details of
	// type "credential" (documentDigests with hash and label); without, as
	// the CSC parameters credentialID, numSignatures, hashes and
	// hashAlgorithmOID.
	Labels []string
	// Description says what the signature is for (the consent page shows
	// it); optional, at most 500 characters.
	Description string
}

// CredentialToken is a credential-scope access token: send it as the
// Bearer of signatures/signHash (and credentials/info) of its credential
// with cscclient.WithCredentialToken, without SAD. It is bound to the
// credential, the hashes and the number of signatures, and lives a few
// minutes. Its String, GoString and LogValue never show the token.
type CredentialToken struct {
	AccessToken  string
	CredentialID string
	// TokenType is "Bearer", or "SAD" from a CSC v1 server, whose
	// credential token goes in signHash's SAD instead (V1 8.3.3).
	TokenType string
	Expiry    time.Time // zero: the server did not say
	// AuthorizationDetails are those the server granted, when the request
	// had any (RFC 9396 §7).
	AuthorizationDetails json.RawMessage
}

func (t CredentialToken) String() string {
	return fmt.Sprintf("CredentialToken{credential:%s access:%s expiry:%s}",
		t.CredentialID, redacted(t.AccessToken), t.Expiry.Format(time.RFC3339))
}

// GoString implements fmt.GoStringer (for %#v).
func (t CredentialToken) GoString() string { return t.String() }

// LogValue implements slog.LogValuer.
func (t CredentialToken) LogValue() slog.Value {
	return slog.GroupValue(slog.String("credential", t.CredentialID), slog.Bool("access", t.AccessToken != ""),
		slog.Time("expiry", t.Expiry))
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "[redacted]"
}

// documentDigest and authorizationDetail are the RAR form of a request.
type documentDigest struct {
	Hash  string `json:"hash"` // standard base64, as the CSC examples
	Label string `json:"label,omitempty"`
}

type authorizationDetail struct {
	Type             string           `json:"type"`
	CredentialID     string           `json:"credentialID"`
	DocumentDigests  []documentDigest `json:"documentDigests"`
	HashAlgorithmOID string           `json:"hashAlgorithmOID"`
}

// params returns the authorization request's parameters for r.
func (r CredentialRequest) params() (url.Values, error) {
	switch {
	case r.CredentialID == "":
		return nil, invalidArgument("credential request without credentialID")
	case len(r.Hashes) > 0 && r.HashAlgorithmOID == "":
		return nil, invalidArgument("credential request with hashes but no hashAlgorithmOID")
	case len(r.Hashes) > 0 && r.NumSignatures != 0 && r.NumSignatures != len(r.Hashes):
		return nil, invalidArgument("numSignatures %d for %d hashes", r.NumSignatures, len(r.Hashes))
	case r.NumSignatures < 0:
		return nil, invalidArgument("numSignatures %d", r.NumSignatures)
	case len(r.Labels) > 0 && len(r.Labels) != len(r.Hashes):
		return nil, invalidArgument("%d labels for %d hashes: one label per hash", len(r.Labels), len(r.Hashes))
	case len(r.Description) > 500:
		return nil, invalidArgument("description longer than 500 characters")
	}
	for i, h := range r.Hashes {
		if len(h) == 0 {
			return nil, invalidArgument("hash %d is empty", i)
		}
	}
	v := url.Values{}
	if r.Description != "" {
		v.Set("description", r.Description)
	}
	if len(r.Labels) > 0 {
		d := authorizationDetail{Type: RARTypeCredential, CredentialID: r.CredentialID, HashAlgorithmOID: r.HashAlgorithmOID}
		for i, h := range r.Hashes {
			d.DocumentDigests = append(d.DocumentDigests, documentDigest{Hash: base64.StdEncoding.EncodeToString(h), Label: r.Labels[i]})
		}
		b, err := json.Marshal([]authorizationDetail{d})
		if err != nil {
			return nil, fmt.Errorf("oauth: authorization_details: %w", err)
		}
		v.Set("authorization_details", string(b))
		return v, nil
	}
	n := r.NumSignatures
	if n == 0 {
		n = max(len(r.Hashes), 1)
	}
	v.Set("scope", "credential")
	v.Set("credentialID", r.CredentialID)
	v.Set("numSignatures", strconv.Itoa(n))
	if len(r.Hashes) > 0 {
		v.Set("hashes", cscclient.EncodeQueryHashes(r.Hashes)) // base64url, comma-separated
		v.Set("hashAlgorithmOID", r.HashAlgorithmOID)
	}
	return v, nil
}

// AuthorizeCredential asks the user, in the browser, to authorize one
// signature batch with a credential (the credential scope): the service's
// consent page shows the credential, the number of signatures and each
// document's label and hash, and collects the credential's factors (PIN,
// OTP). It returns the credential token for signatures/signHash.
//
// Errors: errors.Is(err, cscclient.ErrAccessDenied) when the user declined,
// ErrTimeout when the browser did not come back in time, the context's
// error when ctx ended, an *Error for any other OAuth2 error.
func (c *Client) AuthorizeCredential(ctx context.Context, r CredentialRequest) (*CredentialToken, error) {
	params, err := r.params()
	if err != nil {
		return nil, err
	}
	tok, err := c.authorize(ctx, "credential authorization", true, params, func(tok *oauth2.Token) error {
		if t := tok.Type(); t != "Bearer" && !strings.EqualFold(t, "SAD") {
			return badResponse(EndpointToken, http.StatusOK, "token_type %q, want Bearer (or SAD)", t)
		}
		if id, ok := tok.Extra("credentialID").(string); ok && id != "" && id != r.CredentialID {
			return badResponse(EndpointToken, http.StatusOK, "token for credential %q, not %q", id, r.CredentialID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ct := &CredentialToken{AccessToken: tok.AccessToken, CredentialID: r.CredentialID, TokenType: tok.Type(), Expiry: tok.Expiry}
	if strings.EqualFold(ct.TokenType, "SAD") {
		ct.TokenType = "SAD"
	}
	if d := tok.Extra("authorization_details"); d != nil {
		if b, err := json.Marshal(d); err == nil {
			ct.AuthorizationDetails = b
		}
	}
	c.log.Debug("oauth: credential authorized", "credential", r.CredentialID, "hashes", len(r.Hashes))
	return ct, nil
}
