package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

// importTables are the tables ImportSQLite copies, parents before children.
// Both stores name their tables and columns alike.
var importTables = []string{
	"users", "credentials", "tokens", "sads", "audit",
	"oauth_clients", "oauth_requests", "oauth_codes", "oauth_sessions", "oauth_credential_tokens",
	"pending_auth", "challenges", "async_ops", "webauthn_keys",
}

// ErrNotEmpty: ImportSQLite into a database that holds state already.
var ErrNotEmpty = errors.New("the PostgreSQL database is not empty")

// ImportSQLite copies every row of the SQLite store src into d, which must
// hold no state yet (ErrNotEmpty), in one transaction: on any error nothing
// is written. Lists are decoded into arrays, 0/1 into booleans; audit rows
// keep their Seq, PrevHash and Hash. It then checks that each table holds
// as many rows as in src and that the last audit row is the same, and
// returns the count of each table. Run it with no rssp using src (the
// rows are read in one read transaction of src, so a busy file gives a
// consistent copy, without what is written later).
func (d *DB) ImportSQLite(ctx context.Context, src *sqlite.DB) (map[string]int64, error) {
	counts := map[string]int64{}
	rtx, err := src.SQL().BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("postgres: import: reading SQLite: %w", err)
	}
	defer func() { _ = rtx.Rollback() }()
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		for _, table := range importTables {
			var any bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+`)`).Scan(&any); err != nil {
				return err
			}
			if any {
				return fmt.Errorf("%w: table %s has rows", ErrNotEmpty, table)
			}
		}
		for _, table := range importTables {
			n, err := importTable(ctx, rtx, tx, table)
			if err != nil {
				return fmt.Errorf("table %s: %w", table, err)
			}
			counts[table] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: import: %w", err)
	}
	// Check what was committed against the source.
	for _, table := range importTables {
		var want, got int64
		if err := rtx.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&want); err != nil {
			return counts, fmt.Errorf("postgres: import: counting SQLite %s: %w", table, err)
		}
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&got); err != nil {
			return counts, fmt.Errorf("postgres: import: counting %s: %w", table, err)
		}
		if got != want {
			return counts, fmt.Errorf("postgres: import: table %s has %d rows, SQLite %d", table, got, want)
		}
	}
	var srcSeq, dstSeq int64
	var srcHash, dstHash []byte
	if err := rtx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit`).
		Scan(&srcSeq, &srcHash); err != nil {
		return counts, fmt.Errorf("postgres: import: last SQLite audit row: %w", err)
	}
	if err := d.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit`).
		Scan(&dstSeq, &dstHash); err != nil {
		return counts, fmt.Errorf("postgres: import: last audit row: %w", err)
	}
	if srcSeq != dstSeq || !bytes.Equal(srcHash, dstHash) {
		return counts, fmt.Errorf("postgres: import: last audit row %d differs from SQLite's %d", dstSeq, srcSeq)
	}
	return counts, nil
}

// importTable copies one table's rows from the SQLite read transaction
// into tx, converting each value to the type of its PostgreSQL column.
func importTable(ctx context.Context, src *sql.Tx, tx pgx.Tx, table string) (int64, error) {
	// The PostgreSQL columns and their types.
	rows, err := tx.Query(ctx, `SELECT column_name, udt_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	if err != nil {
		return 0, err
	}
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return 0, err
		}
		types[name] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}

	order := "rowid"
	if table == "audit" {
		order = "seq"
	}
	srows, err := src.QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY `+order)
	if err != nil {
		return 0, fmt.Errorf("reading SQLite: %w", err)
	}
	defer srows.Close()
	cols, err := srows.Columns()
	if err != nil {
		return 0, err
	}
	for _, c := range cols {
		if _, ok := types[c]; !ok {
			return 0, fmt.Errorf("SQLite column %s has no PostgreSQL column", c)
		}
	}
	var data [][]any
	for srows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := srows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("reading SQLite: %w", err)
		}
		for i, c := range cols {
			v, err := convert(vals[i], types[c])
			if err != nil {
				return 0, fmt.Errorf("column %s: %w", c, err)
			}
			vals[i] = v
		}
		data = append(data, vals)
	}
	if err := srows.Err(); err != nil {
		return 0, fmt.Errorf("reading SQLite: %w", err)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(data))
	if err != nil {
		return 0, err
	}
	return n, nil
}

// convert turns a value read from SQLite into one for a PostgreSQL column
// of type typ (information_schema's udt_name).
func convert(v any, typ string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "bool":
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("%T for a boolean", v)
		}
		return n != 0, nil
	case "_text", "_bytea":
		b, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("%T for a list", v)
		}
		l, err := sqlite.DecodeList(b)
		if err != nil || len(l) == 0 {
			return nil, err
		}
		if typ == "_text" {
			s := make([]string, len(l))
			for i, e := range l {
				s[i] = string(e)
			}
			return s, nil
		}
		for i, e := range l {
			if e == nil {
				l[i] = []byte{}
			}
		}
		return l, nil
	case "text":
		switch s := v.(type) {
		case string:
			return s, nil
		case []byte:
			return string(s), nil
		}
		return nil, fmt.Errorf("%T for text", v)
	case "bytea", "int8", "int4":
		return v, nil
	}
	return nil, fmt.Errorf("no conversion to %s", typ)
}
