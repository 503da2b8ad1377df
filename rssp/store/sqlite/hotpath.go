package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/csctoken/csctoken/rssp/store"
)

// The signing hot path's reads: each one prepared SELECT on a pooled
// connection, standing for the point reads it replaces (token and user;
// credential and SAD), so a signature costs two reads of the database
// instead of four.

// TokenUser implements store.Store with a join of the token and its user.
func (d *DB) TokenUser(ctx context.Context, hash []byte) (store.Token, store.User, error) {
	type pair struct {
		t store.Token
		u store.User
	}
	p, err := get(ctx, d, stTokenUser, func(sc scanner) (pair, error) {
		var (
			p                          pair
			expires, created, ucreated sql.NullInt64
		)
		if err := sc.Scan(&p.t.Hash, &p.t.Kind, &p.t.UserID, &p.t.ClientID, &p.t.Scope, &p.t.Family, &expires,
			&p.t.Revoked, &created, &p.u.ID, &p.u.Name, &p.u.PasswordHash, &p.u.Disabled, &ucreated); err != nil {
			return pair{}, err
		}
		p.t.ExpiresAt, p.t.CreatedAt, p.u.CreatedAt = fromNanos(expires), fromNanos(created), fromNanos(ucreated)
		return p, nil
	}, hash)
	if err != nil {
		return store.Token{}, store.User{}, fmt.Errorf("sqlite: token and user: %w", notFound(err))
	}
	return p.t, p.u, nil
}

// SigningState implements store.Store with the credential's row joined
// (LEFT) with the SAD's.
func (d *DB) SigningState(ctx context.Context, credentialID string, sadHash []byte) (store.SigningState, error) {
	if len(sadHash) == 0 {
		sadHash = nil // matches no row
	}
	st, err := get(ctx, d, stSigningState, scanSigningState, sadHash, credentialID)
	if err != nil {
		return store.SigningState{}, fmt.Errorf("sqlite: signing state of credential %q: %w", credentialID, notFound(err))
	}
	return st, nil
}

func scanSigningState(sc scanner) (store.SigningState, error) {
	var (
		st                          store.SigningState
		c                           = &st.Credential
		s                           = &st.SAD
		ccreated                    sql.NullInt64
		sadCred, sadUser, hashAlgo  sql.NullString
		hashes                      []byte
		remaining, expires, created sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.UserID, &c.Disabled, &c.PINFailures, &c.Locked, &ccreated,
		&s.Hash, &sadCred, &sadUser, &hashAlgo, &hashes, &remaining, &expires, &created); err != nil {
		return store.SigningState{}, err
	}
	c.CreatedAt = fromNanos(ccreated)
	if s.Hash == nil {
		st.SAD = store.SAD{}
		return st, nil
	}
	st.HasSAD = true
	s.CredentialID, s.UserID, s.HashAlgo = sadCred.String, sadUser.String, hashAlgo.String
	s.Remaining = int(remaining.Int64)
	s.ExpiresAt, s.CreatedAt = fromNanos(expires), fromNanos(created)
	var err error
	if s.Hashes, err = decodeList[[]byte](hashes); err != nil {
		return store.SigningState{}, fmt.Errorf("SAD hashes: %w", err)
	}
	return st, nil
}
