package authserver

// CheckRequest checks and completes an authorization request's parameters
// that do not depend on the user (response type, PKCE, scope, the
// credential scope's parameters), as oauth2/authorize does: for the login
// and consent pages of an external authorization server (rssp/oauth's ORY
// Hydra provider), which show requests this server did not receive.
func (o *Server) CheckRequest(r *AuthRequest) error { return o.checkRequest(r) }
