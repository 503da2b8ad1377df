package csc

import "encoding/json"

// A v2 request may come from a client written for v1 that sends v1's
// field names to a v2 URL. Where a v1 name cannot be confused with
// anything of v2, the v2 request accepts it: "hash" for "hashes" and
// "hashAlgo" for "hashAlgorithmOID" (credentials/authorize and
// signatures/signHash), and "PIN" and "OTP" for the authData objects PIN
// and OTP (credentials/authorize). When a request carries both names, the
// v2 one wins. Encoding always writes the v2 names.

// UnmarshalJSON implements json.Unmarshaler with the v1 spellings above.
func (r *SignHashRequest) UnmarshalJSON(data []byte) error {
	type plain SignHashRequest
	var aux struct {
		plain
		Hash     []Bytes `json:"hash"`
		HashAlgo string  `json:"hashAlgo"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*r = SignHashRequest(aux.plain)
	if r.Hashes == nil {
		r.Hashes = aux.Hash
	}
	if r.HashAlgorithmOID == "" {
		r.HashAlgorithmOID = aux.HashAlgo
	}
	return nil
}

// UnmarshalJSON implements json.Unmarshaler with the v1 spellings above.
func (r *AuthorizeRequest) UnmarshalJSON(data []byte) error {
	type plain AuthorizeRequest
	var aux struct {
		plain
		Hash     []Bytes `json:"hash"`
		HashAlgo string  `json:"hashAlgo"`
		PIN      *string `json:"PIN"`
		OTP      *string `json:"OTP"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*r = AuthorizeRequest(aux.plain)
	if r.Hashes == nil {
		r.Hashes = aux.Hash
	}
	if r.HashAlgorithmOID == "" {
		r.HashAlgorithmOID = aux.HashAlgo
	}
	if r.AuthData == nil {
		if aux.PIN != nil {
			r.AuthData = append(r.AuthData, AuthData{ID: V1PINID, Value: *aux.PIN})
		}
		if aux.OTP != nil {
			r.AuthData = append(r.AuthData, AuthData{ID: V1OTPID, Value: *aux.OTP})
		}
	}
	return nil
}
