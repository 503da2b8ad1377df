package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// The OAuth2 authorization server's tables (schema/0002_oauth.sql).

var _ store.OAuthStore = (*DB)(nil)

// oauthExec runs one writing statement in the writer and returns the
// number of rows it changed. The authorization server's writes are rare, so
// its statements are not among the prepared ones (stmts.go).
func (d *DB) oauthExec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := d.write(ctx, func(w *wtx) error {
		res, err := w.c.conn.ExecContext(context.Background(), query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// nullText stores an empty reference as NULL, so foreign keys allow "none".
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const clientCols = `id, name, secret_hash, redirect_uris, user_id, created_at`

func scanClient(sc scanner) (store.OAuthClient, error) {
	var (
		c       store.OAuthClient
		uris    []byte
		user    sql.NullString
		created sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &uris, &user, &created); err != nil {
		return store.OAuthClient{}, err
	}
	var err error
	if c.RedirectURIs, err = decodeList[string](uris); err != nil {
		return store.OAuthClient{}, fmt.Errorf("redirect URIs: %w", err)
	}
	c.UserID = user.String
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// CreateOAuthClient implements store.OAuthStore.
func (d *DB) CreateOAuthClient(ctx context.Context, c store.OAuthClient) error {
	if c.ID == "" {
		return errors.New("sqlite: create OAuth client: empty ID")
	}
	created, err := nanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth client %q: created at: %w", c.ID, err)
	}
	_, err = d.oauthExec(ctx, `INSERT INTO oauth_clients (`+clientCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.SecretHash, encodeList(c.RedirectURIs), nullText(c.UserID), created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create OAuth client %q: %w", c.ID, store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create OAuth client %q: user %q: %w", c.ID, c.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create OAuth client %q: %w", c.ID, err)
	}
	return nil
}

// OAuthClient implements store.OAuthStore.
func (d *DB) OAuthClient(ctx context.Context, id string) (store.OAuthClient, error) {
	c, err := scanClient(d.db.QueryRowContext(ctx, `SELECT `+clientCols+` FROM oauth_clients WHERE id = ?`, id))
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("sqlite: OAuth client %q: %w", id, notFound(err))
	}
	return c, nil
}

const requestCols = `hash, client_id, pushed, params, expires_at, created_at`

func scanRequest(sc scanner) (store.OAuthRequest, error) {
	var (
		r                store.OAuthRequest
		params           []byte
		expires, created sql.NullInt64
	)
	if err := sc.Scan(&r.Hash, &r.ClientID, &r.Pushed, &params, &expires, &created); err != nil {
		return store.OAuthRequest{}, err
	}
	r.Params = nilIfEmpty(params)
	r.ExpiresAt = fromNanos(expires)
	r.CreatedAt = fromNanos(created)
	return r, nil
}

// CreateOAuthRequest implements store.OAuthStore.
func (d *DB) CreateOAuthRequest(ctx context.Context, r store.OAuthRequest) error {
	if len(r.Hash) == 0 {
		return errors.New("sqlite: create OAuth request: empty hash")
	}
	expires, err := requiredNanos(r.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth request: expires at: %w", err)
	}
	created, err := nanos(r.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth request: created at: %w", err)
	}
	_, err = d.oauthExec(ctx, `INSERT INTO oauth_requests (`+requestCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Hash, r.ClientID, r.Pushed, blob(r.Params), expires, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create OAuth request: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create OAuth request: client %q: %w", r.ClientID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create OAuth request: %w", err)
	}
	return nil
}

// OAuthRequest implements store.OAuthStore.
func (d *DB) OAuthRequest(ctx context.Context, hash []byte) (store.OAuthRequest, error) {
	r, err := scanRequest(d.db.QueryRowContext(ctx, `SELECT `+requestCols+` FROM oauth_requests WHERE hash = ?`, hash))
	if err != nil {
		return store.OAuthRequest{}, fmt.Errorf("sqlite: OAuth request: %w", notFound(err))
	}
	return r, nil
}

// TakeOAuthRequest implements store.OAuthStore with one DELETE ... RETURNING.
func (d *DB) TakeOAuthRequest(ctx context.Context, hash []byte, now time.Time) (store.OAuthRequest, error) {
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.OAuthRequest{}, fmt.Errorf("sqlite: take OAuth request: now: %w", err)
	}
	var r store.OAuthRequest
	err = d.write(ctx, func(w *wtx) error {
		ctx, tx := context.Background(), w.c.conn
		var err error
		r, err = scanRequest(tx.QueryRowContext(ctx, `DELETE FROM oauth_requests WHERE hash = ? RETURNING `+requestCols, hash))
		return notFound(err)
	})
	if err != nil {
		return store.OAuthRequest{}, fmt.Errorf("sqlite: take OAuth request: %w", err)
	}
	if r.ExpiresAt.UnixNano() <= nowN {
		return r, fmt.Errorf("sqlite: take OAuth request: %w", store.ErrExpired)
	}
	return r, nil
}

const codeCols = `hash, client_id, user_id, redirect_uri, code_challenge, scope, credential_id, num_signatures,
	hash_algo, hashes, details, family, used, token_hash, expires_at, created_at`

func scanCode(sc scanner) (store.OAuthCode, error) {
	var (
		c                        store.OAuthCode
		cred                     sql.NullString
		hashes, details, tokHash []byte
		expires, created         sql.NullInt64
	)
	if err := sc.Scan(&c.Hash, &c.ClientID, &c.UserID, &c.RedirectURI, &c.CodeChallenge, &c.Scope, &cred,
		&c.NumSignatures, &c.HashAlgo, &hashes, &details, &c.Family, &c.Used, &tokHash, &expires, &created); err != nil {
		return store.OAuthCode{}, err
	}
	var err error
	if c.Hashes, err = decodeList[[]byte](hashes); err != nil {
		return store.OAuthCode{}, fmt.Errorf("hashes: %w", err)
	}
	c.CredentialID = cred.String
	c.Details = nilIfEmpty(details)
	c.TokenHash = nilIfEmpty(tokHash)
	c.ExpiresAt = fromNanos(expires)
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// CreateOAuthCode implements store.OAuthStore.
func (d *DB) CreateOAuthCode(ctx context.Context, c store.OAuthCode) error {
	if len(c.Hash) == 0 {
		return errors.New("sqlite: create OAuth code: empty hash")
	}
	expires, err := requiredNanos(c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth code: expires at: %w", err)
	}
	created, err := nanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth code: created at: %w", err)
	}
	_, err = d.oauthExec(ctx, `INSERT INTO oauth_codes (`+codeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Hash, c.ClientID, c.UserID, c.RedirectURI, c.CodeChallenge, c.Scope, nullText(c.CredentialID), c.NumSignatures,
		c.HashAlgo, encodeList(c.Hashes), blob(c.Details), c.Family, c.Used, blob(c.TokenHash), expires, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create OAuth code: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create OAuth code: client %q, user %q or credential %q: %w",
			c.ClientID, c.UserID, c.CredentialID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create OAuth code: %w", err)
	}
	return nil
}

// ConsumeOAuthCode implements store.OAuthStore: a conditional UPDATE ...
// RETURNING marks the code used; when it matches nothing, a SELECT in the
// same transaction says why.
func (d *DB) ConsumeOAuthCode(ctx context.Context, hash, tokenHash []byte, now time.Time) (store.OAuthCode, error) {
	if len(tokenHash) == 0 {
		return store.OAuthCode{}, errors.New("sqlite: consume OAuth code: empty token hash")
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.OAuthCode{}, fmt.Errorf("sqlite: consume OAuth code: now: %w", err)
	}
	var c store.OAuthCode
	var why error
	err = d.write(ctx, func(w *wtx) error {
		ctx, tx := context.Background(), w.c.conn
		var err error
		c, err = scanCode(tx.QueryRowContext(ctx, `UPDATE oauth_codes SET used = 1, token_hash = ?
			WHERE hash = ? AND used = 0 AND expires_at > ? RETURNING `+codeCols, tokenHash, hash, nowN))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		c, err = scanCode(tx.QueryRowContext(ctx, `SELECT `+codeCols+` FROM oauth_codes WHERE hash = ?`, hash))
		switch {
		case errors.Is(err, sql.ErrNoRows):
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
		return store.OAuthCode{}, fmt.Errorf("sqlite: consume OAuth code: %w", err)
	}
	if why != nil {
		return c, fmt.Errorf("sqlite: consume OAuth code: %w", why)
	}
	return c, nil
}

const sessionCols = `hash, user_id, auth_time, expires_at, created_at`

func scanSession(sc scanner) (store.OAuthSession, error) {
	var (
		s                          store.OAuthSession
		user                       sql.NullString
		authTime, expires, created sql.NullInt64
	)
	if err := sc.Scan(&s.Hash, &user, &authTime, &expires, &created); err != nil {
		return store.OAuthSession{}, err
	}
	s.UserID = user.String
	s.AuthTime = fromNanos(authTime)
	s.ExpiresAt = fromNanos(expires)
	s.CreatedAt = fromNanos(created)
	return s, nil
}

// CreateOAuthSession implements store.OAuthStore.
func (d *DB) CreateOAuthSession(ctx context.Context, s store.OAuthSession) error {
	if len(s.Hash) == 0 {
		return errors.New("sqlite: create OAuth session: empty hash")
	}
	expires, err := requiredNanos(s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth session: expires at: %w", err)
	}
	authTime, err := nanos(s.AuthTime)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth session: auth time: %w", err)
	}
	created, err := nanos(s.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create OAuth session: created at: %w", err)
	}
	_, err = d.oauthExec(ctx, `INSERT INTO oauth_sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?)`,
		s.Hash, nullText(s.UserID), authTime, expires, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create OAuth session: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create OAuth session: user %q: %w", s.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create OAuth session: %w", err)
	}
	return nil
}

// OAuthSession implements store.OAuthStore.
func (d *DB) OAuthSession(ctx context.Context, hash []byte) (store.OAuthSession, error) {
	s, err := scanSession(d.db.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM oauth_sessions WHERE hash = ?`, hash))
	if err != nil {
		return store.OAuthSession{}, fmt.Errorf("sqlite: OAuth session: %w", notFound(err))
	}
	return s, nil
}

// DeleteOAuthSession implements store.OAuthStore.
func (d *DB) DeleteOAuthSession(ctx context.Context, hash []byte) error {
	n, err := d.oauthExec(ctx, `DELETE FROM oauth_sessions WHERE hash = ?`, hash)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: delete OAuth session: %w", err)
	case n == 0:
		return fmt.Errorf("sqlite: delete OAuth session: %w", store.ErrNotFound)
	}
	return nil
}

// CreateCredentialToken implements store.OAuthStore.
func (d *DB) CreateCredentialToken(ctx context.Context, t store.CredentialToken) error {
	if len(t.TokenHash) == 0 || t.CredentialID == "" {
		return errors.New("sqlite: create credential token: empty hash or credential")
	}
	expires, err := requiredNanos(t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create credential token: expires at: %w", err)
	}
	_, err = d.oauthExec(ctx, `INSERT INTO oauth_credential_tokens (token_hash, credential_id, expires_at) VALUES (?, ?, ?)`,
		t.TokenHash, t.CredentialID, expires)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create credential token: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create credential token: credential %q: %w", t.CredentialID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create credential token: %w", err)
	}
	return nil
}

// CredentialToken implements store.OAuthStore.
func (d *DB) CredentialToken(ctx context.Context, tokenHash []byte) (store.CredentialToken, error) {
	var (
		t       store.CredentialToken
		expires sql.NullInt64
	)
	err := d.db.QueryRowContext(ctx, `SELECT token_hash, credential_id, expires_at FROM oauth_credential_tokens WHERE token_hash = ?`,
		tokenHash).Scan(&t.TokenHash, &t.CredentialID, &expires)
	if err != nil {
		return store.CredentialToken{}, fmt.Errorf("sqlite: credential token: %w", notFound(err))
	}
	t.ExpiresAt = fromNanos(expires)
	return t, nil
}

// PurgeOAuth implements store.OAuthStore.
func (d *DB) PurgeOAuth(ctx context.Context, now time.Time) error {
	n, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("sqlite: purge OAuth: %w", err)
	}
	err = d.write(ctx, func(w *wtx) error {
		ctx, tx := context.Background(), w.c.conn
		for _, table := range []string{"oauth_requests", "oauth_codes", "oauth_sessions", "oauth_credential_tokens"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE expires_at <= ?`, n); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge OAuth: %w", err)
	}
	return nil
}
