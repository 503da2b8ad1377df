// Package adapter holds the tests of the module with its CSC adapter
// (module/cscservice) against the real rssp, started in process by
// internal/rssptest: signing, wrong and locked PINs, SCAL2, OAuth2 service
// login, browser mode, the server gone and back. They live here so that
// `go test ./module/...` builds no server package; the adapter's unit tests
// use fake CSC servers.
package adapter
