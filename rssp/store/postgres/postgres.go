// Package postgres implements store.Store on PostgreSQL with pgx
// (github.com/jackc/pgx/v5, a pool of connections): the store of an RSSP
// that runs on several nodes, which then share every piece of state through
// the database.
//
// Everything that must happen once or in order does so by the database, not
// by a process's memory, so it holds across nodes: a SAD or a credential's
// PIN counter changes in one conditional UPDATE ... RETURNING (the row lock
// makes concurrent callers queue, and each sees the row as the one before
// left it), a refresh token rotates, a code or a pushed request is used, an
// out-of-band decision is taken, all by compare-and-set statements. The
// audit log stays one hash chain: a row is appended under a
// transaction-scoped advisory lock (auditLockKey), reading the last row and
// inserting the next in the same transaction as the change it records
// (ConsumeSAD, CreateSAD), so appends from every node are serialised.
//
// The schema is versioned: Open applies the embedded migrations
// (schema/NNNN_name.sql) the database lacks, in one transaction under an
// advisory lock (migrateLockKey), so nodes starting together migrate once,
// and refuses a database written by a newer program. Migrations are
// forward-only.
//
// Times are BIGINT Unix nanoseconds, as in the SQLite store (timestamptz
// keeps microseconds only).
//
// Usage:
//
//	db, err := postgres.Open(ctx, postgres.Config{DSN: "postgres://rssp@db.example/rssp"})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	var s store.Store = db
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/csctoken/csctoken/rssp/store"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// Advisory lock keys (pg_advisory_xact_lock), arbitrary constants of this
// program: one for migrations, one for the audit chain.
const (
	migrateLockKey int64 = 0x6373_6374_6d69_6772 // "csctmigr"
	auditLockKey   int64 = 0x6373_6374_6175_6474 // "csctaudt"
)

// Config says how to reach the database.
type Config struct {
	// DSN is a libpq connection string, URL ("postgres://user@host/db")
	// or key=value form. The usual libpq environment variables (PGHOST,
	// PGPASSWORD, PGPASSFILE, PGSSLMODE, ...) fill what it leaves out.
	DSN string
	// Password, if not empty, replaces the DSN's (read from a file by the
	// caller, so it needs not be written in the configuration).
	Password string
	// MaxConns bounds the pool; 0: pgxpool's default (the larger of 4 and
	// the number of CPUs).
	MaxConns int32
}

// DB is a store.Store in a PostgreSQL database.
type DB struct {
	pool *pgxpool.Pool
	// now is the clock for AppendAudit rows without a time.
	now func() time.Time

	// The chain writer (chain.go) takes ops from chainOps until closed is
	// closed, then closes writerDone.
	chainOps   chan *chainOp
	writerDone chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ store.Store        = (*DB)(nil)
	_ store.PendingStore = (*DB)(nil)
)

// Open connects to the database, brings its schema up to date and returns
// the store. Errors never contain the password.
func Open(ctx context.Context, c Config) (*DB, error) {
	pc, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		// pgx's parse errors quote the DSN (redacting password but not
		// sslpassword): give their cause only, when they have one.
		cause := errors.Unwrap(err)
		if cause == nil {
			cause = errors.New("not a valid connection string")
		}
		return nil, fmt.Errorf("postgres: open %s: parsing the DSN: %w", RedactDSN(c.DSN), cause)
	}
	if c.Password != "" {
		pc.ConnConfig.Password = c.Password
	}
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "rssp"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", RedactDSN(c.DSN), err)
	}
	d := &DB{pool: pool, now: time.Now, closed: make(chan struct{}), chainOps: make(chan *chainOp),
		writerDone: make(chan struct{})}
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", RedactDSN(c.DSN), err)
	}
	go d.chainWriter()
	return d, nil
}

// RedactDSN returns dsn without its password, for logs and errors.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
				u.RawQuery = q.Encode()
			}
		}
		return u.String()
	} else if err != nil && strings.Contains(dsn, "://") {
		return "(unparsable DSN)"
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// kvPassword matches the password (or sslpassword) of a key=value
// connection string, quoted or not.
var kvPassword = regexp.MustCompile(`(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// migration is one embedded schema file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded schema files in order, checking that they
// are numbered 1, 2, 3, ... without gaps.
func migrations() ([]migration, error) {
	entries, err := schemaFS.ReadDir("schema")
	if err != nil {
		return nil, fmt.Errorf("reading embedded schema: %w", err)
	}
	var ms []migration
	for _, e := range entries { // ReadDir sorts by name
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("embedded schema file %q: want %04d_name.sql", e.Name(), len(ms)+1)
		}
		b, err := schemaFS.ReadFile(path.Join("schema", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading embedded schema: %w", err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, in one transaction
// under the migration lock.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return migrateTo(ctx, d.pool, ms)
}

// migrateTo applies ms (or what the database lacks of them) in one
// transaction: a failed migration leaves the database as it was, and a
// second process waits on the lock, then finds nothing to do.
func migrateTo(ctx context.Context, pool *pgxpool.Pool, ms []migration) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer NOT NULL PRIMARY KEY,
			applied_at bigint  NOT NULL
		)`); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&cur); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		if cur > len(ms) {
			return fmt.Errorf("database schema version %d is newer than this program's (%d)", cur, len(ms))
		}
		for _, m := range ms[cur:] {
			// Simple protocol: a file holds several statements.
			if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`,
				m.version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the database's schema version.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := d.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Ping reads the schema version: the database answers. It fails after
// Close.
func (d *DB) Ping(ctx context.Context) error {
	select {
	case <-d.closed:
		return errClosed
	default:
	}
	if _, err := d.SchemaVersion(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close waits for the audit appends under way, then closes the pool,
// waiting for the connections in use to come back.
// Calling it again is harmless.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		<-d.writerDone
		d.pool.Close()
	})
	return nil
}

// Pool returns the connection pool (for rssp admin's copy from SQLite and
// for tests).
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// SQLSTATE codes the store maps to its sentinels.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeDiskFull            = "53100"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isTaken(err error) bool         { return pgCode(err) == codeUniqueViolation }
func isMissingParent(err error) bool { return pgCode(err) == codeForeignKeyViolation }

// wrap adds store.ErrFull to a disk-full error.
func wrap(err error) error {
	if pgCode(err) == codeDiskFull {
		return fmt.Errorf("%w: %w", store.ErrFull, err)
	}
	return err
}

// notFound turns pgx.ErrNoRows into store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return wrap(err)
}

// exec runs one statement and returns the number of rows it changed.
func (d *DB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := d.pool.Exec(ctx, query, args...)
	if err != nil {
		return 0, wrap(err)
	}
	return tag.RowsAffected(), nil
}

// inTx runs fn in a transaction (READ COMMITTED), committed when fn
// returns nil.
func (d *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return wrap(pgx.BeginFunc(ctx, d.pool, fn))
}

// The range of times an int64 of Unix nanoseconds holds.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

var errTimeRange = errors.New("time outside 1678-2262")

// nanos converts t for a nullable time column: NULL for the zero time.
func nanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	n, err := requiredNanos(t)
	return &n, err
}

// requiredNanos converts t for a NOT NULL time column.
func requiredNanos(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, errors.New("time is required")
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%w: %v", errTimeRange, t)
	}
	return t.UnixNano(), nil
}

// fromNanos converts a time column back; NULL is the zero time.
func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// blob stores empty byte slices as NULL.
func blob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nilIfEmpty returns nil for an empty slice.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// list stores an empty list as NULL.
func list[T any](l []T) []T {
	if len(l) == 0 {
		return nil
	}
	return l
}

// bytesList normalises a list read back: nil when empty, empty elements
// nil.
func bytesList(l [][]byte) [][]byte {
	if len(l) == 0 {
		return nil
	}
	for i, e := range l {
		l[i] = nilIfEmpty(e)
	}
	return l
}

// nullText stores an empty reference as NULL, so foreign keys allow "none".
func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func text(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
