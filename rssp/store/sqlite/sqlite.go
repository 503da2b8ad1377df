// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite: pure Go, no cgo). It is the RSSP's default store.
//
// The database is one file, created with mode 0600, in WAL journal mode with
// foreign keys on. Its schema is versioned: Open applies the embedded
// migrations (schema/NNNN_name.sql) that the file lacks, in one transaction,
// and refuses a file written by a newer program.
//
// Concurrency: a *DB is safe for concurrent use. Reads run in parallel on a
// small pool of connections (WAL readers do not block the writer). Writes
// run one transaction at a time, so goroutines queue in Go instead of
// spinning in SQLite's busy handler: the caller that finds no write under
// way runs its own at once, and the writes that queued up meanwhile run
// together in the next transaction, led by one of their callers (write.go).
// Every commit is durable by default (synchronous=FULL: a signature's SAD
// consumption and audit row survive a power cut; OpenOptions may relax it
// to synchronous=NORMAL, which survives a crash of the process only), and
// an fsync costs far more than the statements, so sharing it pays (group
// commit): each write runs in a SAVEPOINT of its own, so one failing leaves
// the others alone, and each caller returns only after the commit that made
// its write durable.
// Write transactions start with BEGIN IMMEDIATE, so another process on the
// same file (rssp admin while rssp serve runs) waits up to busyTimeout for
// the write lock instead of failing half-way.
//
// Usage:
//
//	db, err := sqlite.Open(ctx, "/var/lib/rssp/rssp.db")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	var s store.Store = db
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	msqlite "modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/csctoken/csctoken/rssp/store"
)

// busyTimeout is how long a statement waits for a lock held by another
// process before it fails with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

//go:embed schema/*.sql
var schemaFS embed.FS

// DB is a store.Store in an SQLite file.
type DB struct {
	db   *sql.DB
	path string
	// now is the clock for AppendAudit rows without a time.
	now func() time.Time

	// closing is closed when Close begins.
	closing chan struct{}
	// The write queue and the leader's turn (write.go), guarded by wmu:
	// wqueue holds the ops waiting for the next batch, oldest first;
	// wbusy is set while a batch runs or its leader has been chosen;
	// wclosed refuses new writes; widle, made by Close while a batch
	// runs, is closed when the last one ends.
	wmu     sync.Mutex
	wqueue  []*writeOp
	wbusy   bool
	wclosed bool
	widle   chan struct{}
	// Batches and ops run so far, for tests and benchmarks.
	batches, ops atomic.Int64
	// head is the audit log's last row as the last write left it (see
	// auditRow.append); only a batch's leader uses it.
	head auditHead
	// wconn is the connection the write transactions run on (runBatch),
	// taken from the pool at Open; nil after it broke, until the next
	// batch takes another. Only a batch's leader uses it, and Close once
	// the writes have ended.
	wconn *writeConn

	// stmts are the prepared statements (stmts.go), made by Open, closed
	// by Close.
	stmts [numStmts]*sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*DB)(nil)

// options are the knobs tests and benchmarks turn.
type options struct {
	synchronous string // PRAGMA synchronous: "FULL" (default) or "NORMAL"
}

// Options are the operator's choices for OpenOptions.
type Options struct {
	// Synchronous is the durability of a commit: "full" (or empty, the
	// default): PRAGMA synchronous=FULL, a write returns only once its
	// commit is on disk, so a power cut or an OS crash loses nothing that
	// was answered; "normal": PRAGMA synchronous=NORMAL, which in WAL mode
	// does not wait for the disk on each commit: a commit survives a crash
	// of the process, but the last commits before a power cut or an OS
	// crash may be lost.
	Synchronous string
}

// Open opens the database file at path, creating it (mode 0600) and its
// schema when missing. path is a file system path, not a URI; ":memory:" is
// refused because each pooled connection would see a database of its own.
// Every commit is durable (Options.Synchronous "full").
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, options{synchronous: "FULL"})
}

// OpenOptions is Open with the operator's choices o.
func OpenOptions(ctx context.Context, path string, o Options) (*DB, error) {
	switch o.Synchronous {
	case "", "full":
		return open(ctx, path, options{synchronous: "FULL"})
	case "normal":
		return open(ctx, path, options{synchronous: "NORMAL"})
	}
	return nil, fmt.Errorf("sqlite: open %q: synchronous %q: want \"full\" or \"normal\"", path, o.Synchronous)
}

func open(ctx context.Context, path string, o options) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: want a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	// SQLite would create the file with mode 0644; create it first so it
	// is 0600. The -wal and -shm files take the database file's mode.
	// An existing file keeps its mode.
	created, err := createFile(abs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// undo removes a file this call created, when it fails.
	undo := func() {
		if created {
			for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
				_ = os.Remove(p)
			}
		}
	}

	sdb, err := sql.Open("sqlite", dsn(abs, o))
	if err != nil {
		undo()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	// A few connections per core: the writer's, the rest for readers. Idle
	// connections are kept, since a new one costs an open and the pragmas.
	n := max(4, 2*runtime.GOMAXPROCS(0))
	sdb.SetMaxOpenConns(n)
	sdb.SetMaxIdleConns(n)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)

	d := &DB{
		db:      sdb,
		path:    abs,
		now:     time.Now,
		closing: make(chan struct{}),
	}
	if err := d.init(ctx, o); err != nil {
		_ = sdb.Close()
		undo()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	return d, nil
}

// createFile creates an empty file with mode 0600 unless one exists, and
// reports whether it did.
func createFile(path string) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// dsn builds the modernc.org/sqlite data source name: a file: URI (so the
// path may hold any character) whose parameters set every connection up.
func dsn(abs string, o options) string {
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+o.synchronous+")")
	q.Set("_txlock", "immediate") // BeginTx issues BEGIN IMMEDIATE
	u.RawQuery = q.Encode()
	return u.String()
}

// init checks the connection settings, brings the schema up to date and
// prepares the statements.
func (d *DB) init(ctx context.Context, o options) error {
	var mode string
	if err := d.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	var sync int
	if err := d.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("synchronous: %w", err)
	}
	if want := map[string]int{"NORMAL": 1, "FULL": 2}[o.synchronous]; sync != want {
		return fmt.Errorf("synchronous is %d, want %d (%s)", sync, want, o.synchronous)
	}
	var fk bool
	if err := d.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	if !fk {
		return errors.New("foreign keys are off")
	}
	if err := d.migrate(ctx); err != nil {
		return err
	}
	if err := d.prepare(ctx); err != nil {
		return err
	}
	wc, err := d.newWriteConn(ctx)
	if err != nil {
		_ = d.closeStmts()
		return fmt.Errorf("writer's connection: %w", err)
	}
	d.wconn = wc
	return nil
}

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

// migrate applies the migrations the file lacks, all in one write
// transaction, so two processes opening a new file do not race and a failed
// migration leaves the file as it was.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// No write can run yet: one transaction of our own.
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit it does nothing
	if err := migrateTx(ctx, tx, ms); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// migrateTx applies the migrations after the file's version inside tx.
func migrateTx(ctx context.Context, tx *sql.Tx, ms []migration) error {
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("schema_version: %w", err)
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&cur); err != nil {
		return fmt.Errorf("schema_version: %w", err)
	}
	if cur > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this program's (%d)", cur, len(ms))
	}
	for _, m := range ms[cur:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			m.version, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// Ping reads the schema version: the file is open and readable. It fails
// once Close has begun.
func (d *DB) Ping(ctx context.Context) error {
	select {
	case <-d.closing:
		return errors.New("sqlite: closed")
	default:
	}
	var v int
	if err := d.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close waits for the writes under way, then closes the database. Later
// writes fail; calling Close again returns the first result.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		close(d.closing)
		d.closeWrites()
		var errs []error
		if d.wconn != nil {
			errs = append(errs, d.wconn.close())
		}
		if err := errors.Join(append(errs, d.closeStmts(), d.db.Close())...); err != nil {
			d.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return d.closeErr
}

// sqliteCode returns the extended result code of an SQLite error, or 0.
func sqliteCode(err error) int {
	var se *msqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isTaken reports whether err is a violated primary key or unique index.
func isTaken(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// isFull reports whether err is SQLite's "database or disk is full" (the
// VFS maps ENOSPC to it), or ENOSPC itself.
func isFull(err error) bool {
	return err != nil && (sqliteCode(err)&0xff == sqlite3.SQLITE_FULL || errors.Is(err, syscall.ENOSPC))
}

// isMissingParent reports whether err is a violated foreign key.
func isMissingParent(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// The range of times an int64 of Unix nanoseconds holds.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

var errTimeRange = errors.New("time outside 1678-2262")

// nanos converts t for a nullable time column: NULL for the zero time.
func nanos(t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	return requiredNanos(t)
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
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// blob stores empty byte slices as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nilIfEmpty returns nil for an empty slice, so every empty value reads
// back the same way.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// SQL returns the database handle, for reading the file as a whole (rssp
// admin store migrate-from-sqlite). Writes must go through the store's
// methods.
func (d *DB) SQL() *sql.DB { return d.db }

// DecodeList decodes a list column (certificate chains, bound digests,
// audit hashes, redirect URIs, signatures) as stored in the file: NULL or
// empty is the empty list.
func DecodeList(b []byte) ([][]byte, error) { return decodeList[[]byte](b) }
