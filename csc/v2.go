package csc

// This file holds the CSC API v2 request and response bodies
// (docs/mapping.md, "CSC coverage" and "CSC notes"). Optional booleans are plain bools: their
// default is false everywhere in v2.

import "slices"

// Version strings.
const (
	SpecV2 = "2.0.0.2"
	SpecV1 = "1.0.4.0"
)

// InfoRequest is the body of info.
type InfoRequest struct {
	Lang string `json:"lang,omitempty"`
}

// SignAlgorithms lists the signature algorithms a service supports.
type SignAlgorithms struct {
	Algos      []string `json:"algos"`
	AlgoParams []Bytes  `json:"algoParams,omitempty"`
}

// SignatureFormats lists the AdES formats of signDoc.
type SignatureFormats struct {
	Formats            []string   `json:"formats"`
	EnvelopeProperties [][]string `json:"envelope_properties,omitempty"`
}

// InfoResponse is the answer of info.
type InfoResponse struct {
	Specs                     string            `json:"specs"`
	Name                      string            `json:"name"`
	Logo                      string            `json:"logo"`
	Region                    string            `json:"region"`
	Lang                      string            `json:"lang"`
	Description               string            `json:"description"`
	AuthType                  []string          `json:"authType"`
	OAuth2                    string            `json:"oauth2,omitempty"`
	OAuth2Issuer              string            `json:"oauth2Issuer,omitempty"`
	AsynchronousOperationMode bool              `json:"asynchronousOperationMode,omitempty"`
	Methods                   []string          `json:"methods"`
	ValidationInfo            bool              `json:"validationInfo,omitempty"`
	SignAlgorithms            *SignAlgorithms   `json:"signAlgorithms,omitempty"`
	SignatureFormats          *SignatureFormats `json:"signature_formats,omitempty"`
	ConformanceLevels         []string          `json:"conformance_levels,omitempty"`
}

// LoginRequest is the body of auth/login.
type LoginRequest struct {
	RefreshToken string `json:"refresh_token,omitempty"`
	RememberMe   bool   `json:"rememberMe,omitempty"`
	ClientData   string `json:"clientData,omitempty"`
}

// LoginResponse is the answer of auth/login (and of oauth2/token).
type LoginResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
}

// RevokeRequest is the body of auth/revoke.
type RevokeRequest struct {
	Token         string `json:"token"`
	TokenTypeHint string `json:"token_type_hint,omitempty"`
	ClientData    string `json:"clientData,omitempty"`
}

// Values of the certificates parameter.
const (
	CertsNone   = "none"
	CertsSingle = "single"
	CertsChain  = "chain"
)

// CredentialsListRequest is the body of credentials/list.
type CredentialsListRequest struct {
	UserID         string `json:"userID,omitempty"`
	CredentialInfo bool   `json:"credentialInfo,omitempty"`
	Certificates   string `json:"certificates,omitempty"`
	CertInfo       bool   `json:"certInfo,omitempty"`
	AuthInfo       bool   `json:"authInfo,omitempty"`
	OnlyValid      bool   `json:"onlyValid,omitempty"`
	Lang           string `json:"lang,omitempty"`
	ClientData     string `json:"clientData,omitempty"`
	// SignatureQualifier, when set, lists only the credentials that carry
	// it (an extension of this service; other servers may ignore it).
	SignatureQualifier string `json:"signatureQualifier,omitempty"`
	// v1 paging (mapped from maxResults/pageToken by the v1 wire shape).
	MaxResults int    `json:"maxResults,omitempty"`
	PageToken  string `json:"pageToken,omitempty"`
}

// CredentialsListResponse is the answer of credentials/list.
type CredentialsListResponse struct {
	CredentialIDs   []string         `json:"credentialIDs"`
	CredentialInfos []CredentialInfo `json:"credentialInfos,omitempty"`
	OnlyValid       bool             `json:"onlyValid,omitempty"`
	NextPageToken   string           `json:"nextPageToken,omitempty"`
}

// CredentialsInfoRequest is the body of credentials/info.
type CredentialsInfoRequest struct {
	CredentialID string `json:"credentialID"`
	Certificates string `json:"certificates,omitempty"`
	CertInfo     bool   `json:"certInfo,omitempty"`
	AuthInfo     bool   `json:"authInfo,omitempty"`
	Lang         string `json:"lang,omitempty"`
	ClientData   string `json:"clientData,omitempty"`
}

// KeyInfo is the key object of credentials/info.
type KeyInfo struct {
	Status string   `json:"status"`
	Algo   []string `json:"algo"`
	Len    int      `json:"len"`
	Curve  string   `json:"curve,omitempty"`
}

// CertInfo is the cert object of credentials/info.
type CertInfo struct {
	Status       string  `json:"status,omitempty"`
	Certificates []Bytes `json:"certificates,omitempty"`
	IssuerDN     string  `json:"issuerDN,omitempty"`
	SerialNumber string  `json:"serialNumber,omitempty"`
	SubjectDN    string  `json:"subjectDN,omitempty"`
	ValidFrom    string  `json:"validFrom,omitempty"`
	ValidTo      string  `json:"validTo,omitempty"`
}

// Authentication object types.
const (
	AuthPassword             = "Password"
	AuthPasswordOOB          = "PasswordOOB"
	AuthChallengeResponse    = "ChallengeResponse"
	AuthChallengeResponseOOB = "ChallengeResponseOOB"
)

// SignatureQualifiers are the signature qualifiers the CSC API names
// (signatureQualifier in credentials/info, signDoc and oauth2/authorize):
// the eIDAS qualified and advanced electronic signatures and seals, the
// latter optionally backed by a qualified certificate, and South Africa's
// ECTA advanced and ordinary electronic signatures.
var SignatureQualifiers = []string{
	"eu_eidas_qes", "eu_eidas_aes", "eu_eidas_aesqc",
	"eu_eidas_qeseal", "eu_eidas_aeseal", "eu_eidas_aesealqc",
	"za_ecta_aes", "za_ecta_oes",
}

// IsSignatureQualifier reports whether q is one of SignatureQualifiers.
func IsSignatureQualifier(q string) bool {
	return slices.Contains(SignatureQualifiers, q)
}

// Credential authorization modes.
const (
	AuthModeExplicit   = "explicit"
	AuthModeOAuth2Code = "oauth2code"
	AuthModeImplicit   = "implicit" // v1 only
)

// AuthObject is one factor of explicit credential authorization.
type AuthObject struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Format      string `json:"format,omitempty"`
	Generator   string `json:"generator,omitempty"`
	Label       string `json:"label,omitempty"`
	Description string `json:"description,omitempty"`
}

// AuthInfo is the auth object of credentials/info.
type AuthInfo struct {
	Mode       string       `json:"mode"`
	Expression string       `json:"expression,omitempty"`
	Objects    []AuthObject `json:"objects,omitempty"`
}

// CredentialInfo is the answer of credentials/info, and one entry of
// credentialInfos in credentials/list (with CredentialID set).
type CredentialInfo struct {
	CredentialID       string    `json:"credentialID,omitempty"`
	Description        string    `json:"description,omitempty"`
	SignatureQualifier string    `json:"signatureQualifier,omitempty"`
	Key                KeyInfo   `json:"key"`
	Cert               *CertInfo `json:"cert,omitempty"`
	Auth               *AuthInfo `json:"auth,omitempty"`
	SCAL               string    `json:"SCAL,omitempty"`
	Multisign          int       `json:"multisign"`
	Lang               string    `json:"lang,omitempty"`
}

// AuthData is one factor value in credentials/authorize.
type AuthData struct {
	ID    string `json:"id"`
	Value string `json:"value,omitempty"`
}

// AuthorizeRequest is the body of credentials/authorize.
type AuthorizeRequest struct {
	CredentialID     string     `json:"credentialID"`
	NumSignatures    int        `json:"numSignatures"`
	Hashes           []Bytes    `json:"hashes,omitempty"`
	HashAlgorithmOID string     `json:"hashAlgorithmOID,omitempty"`
	AuthData         []AuthData `json:"authData,omitempty"`
	Description      string     `json:"description,omitempty"`
	ClientData       string     `json:"clientData,omitempty"`
}

// AuthorizeResponse is the answer of credentials/authorize,
// authorizeCheck and extendTransaction: a SAD (200) or a handle (202).
type AuthorizeResponse struct {
	SAD       string `json:"SAD,omitempty"`
	ExpiresIn int64  `json:"expiresIn,omitempty"`
	Handle    string `json:"handle,omitempty"`
}

// AuthorizeCheckRequest is the body of credentials/authorizeCheck.
type AuthorizeCheckRequest struct {
	Handle     string `json:"handle"`
	ClientData string `json:"clientData,omitempty"`
}

// GetChallengeRequest is the body of credentials/getChallenge.
type GetChallengeRequest struct {
	CredentialID string `json:"credentialID"`
	AuthObjectID string `json:"authObjectID"`
	ClientData   string `json:"clientData,omitempty"`
}

// GetChallengeResponse is the answer of credentials/getChallenge.
type GetChallengeResponse struct {
	Challenge string `json:"challenge,omitempty"`
}

// ExtendTransactionRequest is the body of credentials/extendTransaction.
type ExtendTransactionRequest struct {
	CredentialID     string  `json:"credentialID"`
	Hashes           []Bytes `json:"hashes,omitempty"`
	HashAlgorithmOID string  `json:"hashAlgorithmOID,omitempty"`
	SAD              string  `json:"SAD"`
	ClientData       string  `json:"clientData,omitempty"`
}

// Operation modes of signHash.
const (
	OperationSync  = "S"
	OperationAsync = "A"
)

// SignHashRequest is the body of signatures/signHash.
type SignHashRequest struct {
	CredentialID string `json:"credentialID"`
	// SignatureQualifier, when set, must be the credential's (as in
	// signDoc, where it may also stand for the credential).
	SignatureQualifier string  `json:"signatureQualifier,omitempty"`
	SAD                string  `json:"SAD,omitempty"`
	Hashes             []Bytes `json:"hashes"`
	HashAlgorithmOID   string  `json:"hashAlgorithmOID,omitempty"`
	SignAlgo           string  `json:"signAlgo"`
	SignAlgoParams     Bytes   `json:"signAlgoParams,omitempty"`
	OperationMode      string  `json:"operationMode,omitempty"`
	ValidityPeriod     int64   `json:"validity_period,omitempty"`
	ResponseURI        string  `json:"response_uri,omitempty"`
	ClientData         string  `json:"clientData,omitempty"`
}

// SignHashResponse is the answer of signatures/signHash and signPolling.
type SignHashResponse struct {
	Signatures []Bytes `json:"signatures,omitempty"`
	ResponseID string  `json:"responseID,omitempty"`
}

// SignPollingRequest is the body of signatures/signPolling.
type SignPollingRequest struct {
	RequestID  string `json:"requestID"`
	UserID     string `json:"userID,omitempty"`
	ClientData string `json:"clientData,omitempty"`
}

// TimestampRequest is the body of signatures/timestamp.
type TimestampRequest struct {
	Hash       Bytes  `json:"hash"`
	HashAlgo   string `json:"hashAlgo"`
	Nonce      string `json:"nonce,omitempty"`
	ClientData string `json:"clientData,omitempty"`
}

// TimestampResponse is the answer of signatures/timestamp.
type TimestampResponse struct {
	Timestamp Bytes `json:"timestamp"`
}
