package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// The OAuth2 authorization server's state.

// insertErr maps an INSERT's errors to the sentinels.
func insertErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case isTaken(err):
		return store.ErrExists
	case isMissingParent(err):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return err
}

const clientCols = `id, name, secret_hash, redirect_uris, user_id, created_at`

func scanClient(sc scanner) (store.OAuthClient, error) {
	var (
		c       store.OAuthClient
		user    *string
		created *int64
	)
	if err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &c.RedirectURIs, &user, &created); err != nil {
		return store.OAuthClient{}, err
	}
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = nil
	}
	c.UserID = text(user)
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// CreateOAuthClient implements store.OAuthStore.
func (d *DB) CreateOAuthClient(ctx context.Context, c store.OAuthClient) error {
	if c.ID == "" {
		return errors.New("postgres: create OAuth client: empty ID")
	}
	created, err := nanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth client %q: created at: %w", c.ID, err)
	}
	_, err = d.exec(ctx, `INSERT INTO oauth_clients (`+clientCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.ID, c.Name, c.SecretHash, list(c.RedirectURIs), nullText(c.UserID), created)
	if err := insertErr(err, "user "+c.UserID); err != nil {
		return fmt.Errorf("postgres: create OAuth client %q: %w", c.ID, err)
	}
	return nil
}

// OAuthClient implements store.OAuthStore.
func (d *DB) OAuthClient(ctx context.Context, id string) (store.OAuthClient, error) {
	c, err := scanClient(d.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM oauth_clients WHERE id = $1`, id))
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("postgres: OAuth client %q: %w", id, notFound(err))
	}
	return c, nil
}

const requestCols = `hash, client_id, pushed, params, expires_at, created_at`

func scanRequest(sc scanner) (store.OAuthRequest, error) {
	var (
		r                store.OAuthRequest
		expires, created *int64
	)
	if err := sc.Scan(&r.Hash, &r.ClientID, &r.Pushed, &r.Params, &expires, &created); err != nil {
		return store.OAuthRequest{}, err
	}
	r.Params = nilIfEmpty(r.Params)
	r.ExpiresAt = fromNanos(expires)
	r.CreatedAt = fromNanos(created)
	return r, nil
}

// CreateOAuthRequest implements store.OAuthStore.
func (d *DB) CreateOAuthRequest(ctx context.Context, r store.OAuthRequest) error {
	if len(r.Hash) == 0 {
		return errors.New("postgres: create OAuth request: empty hash")
	}
	expires, err := requiredNanos(r.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth request: expires at: %w", err)
	}
	created, err := nanos(r.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth request: created at: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO oauth_requests (`+requestCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.Hash, r.ClientID, r.Pushed, blob(r.Params), expires, created)
	if err := insertErr(err, "client "+r.ClientID); err != nil {
		return fmt.Errorf("postgres: create OAuth request: %w", err)
	}
	return nil
}

// OAuthRequest implements store.OAuthStore.
func (d *DB) OAuthRequest(ctx context.Context, hash []byte) (store.OAuthRequest, error) {
	r, err := scanRequest(d.pool.QueryRow(ctx, `SELECT `+requestCols+` FROM oauth_requests WHERE hash = $1`, hash))
	if err != nil {
		return store.OAuthRequest{}, fmt.Errorf("postgres: OAuth request: %w", notFound(err))
	}
	return r, nil
}

// TakeOAuthRequest implements store.OAuthStore with one DELETE ...
// RETURNING: of two nodes taking the same request, one gets the row.
func (d *DB) TakeOAuthRequest(ctx context.Context, hash []byte, now time.Time) (store.OAuthRequest, error) {
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.OAuthRequest{}, fmt.Errorf("postgres: take OAuth request: now: %w", err)
	}
	r, err := scanRequest(d.pool.QueryRow(ctx, `DELETE FROM oauth_requests WHERE hash = $1 RETURNING `+requestCols, hash))
	if err != nil {
		return store.OAuthRequest{}, fmt.Errorf("postgres: take OAuth request: %w", notFound(err))
	}
	if r.ExpiresAt.UnixNano() <= nowN {
		return r, fmt.Errorf("postgres: take OAuth request: %w", store.ErrExpired)
	}
	return r, nil
}

const codeCols = `hash, client_id, user_id, redirect_uri, code_challenge, scope, credential_id, num_signatures,
	hash_algo, hashes, details, family, used, token_hash, expires_at, created_at`

func scanCode(sc scanner) (store.OAuthCode, error) {
	var (
		c                store.OAuthCode
		cred             *string
		expires, created *int64
	)
	if err := sc.Scan(&c.Hash, &c.ClientID, &c.UserID, &c.RedirectURI, &c.CodeChallenge, &c.Scope, &cred,
		&c.NumSignatures, &c.HashAlgo, &c.Hashes, &c.Details, &c.Family, &c.Used, &c.TokenHash, &expires, &created); err != nil {
		return store.OAuthCode{}, err
	}
	c.Hashes = bytesList(c.Hashes)
	c.CredentialID = text(cred)
	c.Details = nilIfEmpty(c.Details)
	c.TokenHash = nilIfEmpty(c.TokenHash)
	c.ExpiresAt = fromNanos(expires)
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// CreateOAuthCode implements store.OAuthStore.
func (d *DB) CreateOAuthCode(ctx context.Context, c store.OAuthCode) error {
	if len(c.Hash) == 0 {
		return errors.New("postgres: create OAuth code: empty hash")
	}
	expires, err := requiredNanos(c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth code: expires at: %w", err)
	}
	created, err := nanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth code: created at: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO oauth_codes (`+codeCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		c.Hash, c.ClientID, c.UserID, c.RedirectURI, c.CodeChallenge, c.Scope, nullText(c.CredentialID), c.NumSignatures,
		c.HashAlgo, list(c.Hashes), blob(c.Details), c.Family, c.Used, blob(c.TokenHash), expires, created)
	if err := insertErr(err, fmt.Sprintf("client %q, user %q or credential %q", c.ClientID, c.UserID, c.CredentialID)); err != nil {
		return fmt.Errorf("postgres: create OAuth code: %w", err)
	}
	return nil
}

// ConsumeOAuthCode implements store.OAuthStore: a conditional UPDATE ...
// RETURNING marks the code used (one exchange wins across nodes); when it
// matches nothing, a SELECT in the same transaction says why.
func (d *DB) ConsumeOAuthCode(ctx context.Context, hash, tokenHash []byte, now time.Time) (store.OAuthCode, error) {
	if len(tokenHash) == 0 {
		return store.OAuthCode{}, errors.New("postgres: consume OAuth code: empty token hash")
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.OAuthCode{}, fmt.Errorf("postgres: consume OAuth code: now: %w", err)
	}
	var (
		c   store.OAuthCode
		why error
	)
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = scanCode(tx.QueryRow(ctx, `UPDATE oauth_codes SET used = true, token_hash = $1
			WHERE hash = $2 AND NOT used AND expires_at > $3 RETURNING `+codeCols, tokenHash, hash, nowN))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		c, err = scanCode(tx.QueryRow(ctx, `SELECT `+codeCols+` FROM oauth_codes WHERE hash = $1`, hash))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			why = store.ErrNotFound
		case err != nil:
			return err
		case c.Used:
			why = store.ErrUsed
		default:
			why = store.ErrExpired
		}
		return nil
	})
	if err != nil {
		return store.OAuthCode{}, fmt.Errorf("postgres: consume OAuth code: %w", err)
	}
	if why != nil {
		return c, fmt.Errorf("postgres: consume OAuth code: %w", why)
	}
	return c, nil
}

const sessionCols = `hash, user_id, auth_time, expires_at, created_at`

func scanSession(sc scanner) (store.OAuthSession, error) {
	var (
		s                          store.OAuthSession
		user                       *string
		authTime, expires, created *int64
	)
	if err := sc.Scan(&s.Hash, &user, &authTime, &expires, &created); err != nil {
		return store.OAuthSession{}, err
	}
	s.UserID = text(user)
	s.AuthTime = fromNanos(authTime)
	s.ExpiresAt = fromNanos(expires)
	s.CreatedAt = fromNanos(created)
	return s, nil
}

// CreateOAuthSession implements store.OAuthStore.
func (d *DB) CreateOAuthSession(ctx context.Context, s store.OAuthSession) error {
	if len(s.Hash) == 0 {
		return errors.New("postgres: create OAuth session: empty hash")
	}
	expires, err := requiredNanos(s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth session: expires at: %w", err)
	}
	authTime, err := nanos(s.AuthTime)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth session: auth time: %w", err)
	}
	created, err := nanos(s.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create OAuth session: created at: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO oauth_sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5)`,
		s.Hash, nullText(s.UserID), authTime, expires, created)
	if err := insertErr(err, "user "+s.UserID); err != nil {
		return fmt.Errorf("postgres: create OAuth session: %w", err)
	}
	return nil
}

// OAuthSession implements store.OAuthStore.
func (d *DB) OAuthSession(ctx context.Context, hash []byte) (store.OAuthSession, error) {
	s, err := scanSession(d.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM oauth_sessions WHERE hash = $1`, hash))
	if err != nil {
		return store.OAuthSession{}, fmt.Errorf("postgres: OAuth session: %w", notFound(err))
	}
	return s, nil
}

// DeleteOAuthSession implements store.OAuthStore.
func (d *DB) DeleteOAuthSession(ctx context.Context, hash []byte) error {
	n, err := d.exec(ctx, `DELETE FROM oauth_sessions WHERE hash = $1`, hash)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: delete OAuth session: %w", err)
	case n == 0:
		return fmt.Errorf("postgres: delete OAuth session: %w", store.ErrNotFound)
	}
	return nil
}

// CreateCredentialToken implements store.OAuthStore.
func (d *DB) CreateCredentialToken(ctx context.Context, t store.CredentialToken) error {
	if len(t.TokenHash) == 0 || t.CredentialID == "" {
		return errors.New("postgres: create credential token: empty hash or credential")
	}
	expires, err := requiredNanos(t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create credential token: expires at: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO oauth_credential_tokens (token_hash, credential_id, expires_at) VALUES ($1, $2, $3)`,
		t.TokenHash, t.CredentialID, expires)
	if err := insertErr(err, "credential "+t.CredentialID); err != nil {
		return fmt.Errorf("postgres: create credential token: %w", err)
	}
	return nil
}

// CredentialToken implements store.OAuthStore.
func (d *DB) CredentialToken(ctx context.Context, tokenHash []byte) (store.CredentialToken, error) {
	var (
		t       store.CredentialToken
		expires *int64
	)
	err := d.pool.QueryRow(ctx, `SELECT token_hash, credential_id, expires_at FROM oauth_credential_tokens WHERE token_hash = $1`,
		tokenHash).Scan(&t.TokenHash, &t.CredentialID, &expires)
	if err != nil {
		return store.CredentialToken{}, fmt.Errorf("postgres: credential token: %w", notFound(err))
	}
	t.ExpiresAt = fromNanos(expires)
	return t, nil
}

// PurgeOAuth implements store.OAuthStore.
func (d *DB) PurgeOAuth(ctx context.Context, now time.Time) error {
	n, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("postgres: purge OAuth: %w", err)
	}
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		for _, table := range []string{"oauth_requests", "oauth_codes", "oauth_sessions", "oauth_credential_tokens"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE expires_at <= $1`, n); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: purge OAuth: %w", err)
	}
	return nil
}
