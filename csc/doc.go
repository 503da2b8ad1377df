// Package csc holds the wire format of the Cloud Signature Consortium API:
// the request and response bodies of every method, the error codes, the
// algorithm OIDs and the lenient base64 that both sides accept. It is shared
// by the RSSP (rssp/) and the client (cscclient/) and imports nothing of ours.
//
// The rule for every type here: strict in what we send (standard base64,
// the field names of the version spoken), lenient in what we accept (both
// base64 alphabets, padded or not; "TLS" in any case).
//
// Reference: CSC API v2.0.0.2 and v1.0.4.0; see docs/mapping.md.
package csc
