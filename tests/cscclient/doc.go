// Package cscclient holds the tests of the CSC client (package
// cscclient) against the real rssp, started in process by
// internal/rssptest. They live here, not beside the client, so that
// `go test ./cscclient/...` builds no server package; the client's own
// unit tests use fake servers.
package cscclient
