package pgmqcontract_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// catalogTx runs fn in a read-only transaction whose search_path is only
// pg_catalog, so catalog functions print schema-qualified names regardless of
// the caller's settings.
func catalogTx(t *testing.T, db querier, fn func(tx pgx.Tx)) {
	t.Helper()
	beginner, ok := db.(interface {
		Begin(ctx context.Context) (pgx.Tx, error)
	})
	require.True(t, ok)
	tx, err := beginner.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), "SET LOCAL search_path TO pg_catalog")
	require.NoError(t, err)
	fn(tx)
}

// expectedFunctions is the 1.11–1.13 overload set of every function in the
// minimum surface (§3, §13): "arguments -> result" as printed by
// pg_get_function_arguments / pg_get_function_result.
var expectedFunctions = map[string][]string{
	"create":                 {"queue_name text -> void"},
	"create_non_partitioned": {"queue_name text -> void"},
	"create_unlogged":        {"queue_name text -> void"},
	"drop_queue": {
		"queue_name text -> boolean",
		"queue_name text, partitioned boolean -> boolean",
	},
	"purge_queue": {"queue_name text -> bigint"},
	"list_queues": {" -> SETOF pgmq.queue_record"},
	"metrics":     {"queue_name text -> pgmq.metrics_result"},
	"metrics_all": {" -> SETOF pgmq.metrics_result"},
	"send": {
		"queue_name text, msg jsonb -> SETOF bigint",
		"queue_name text, msg jsonb, headers jsonb -> SETOF bigint",
		"queue_name text, msg jsonb, delay integer -> SETOF bigint",
		"queue_name text, msg jsonb, delay timestamp with time zone -> SETOF bigint",
		"queue_name text, msg jsonb, headers jsonb, delay integer -> SETOF bigint",
		"queue_name text, msg jsonb, headers jsonb, delay timestamp with time zone -> SETOF bigint",
	},
	"send_batch": {
		"queue_name text, msgs jsonb[] -> SETOF bigint",
		"queue_name text, msgs jsonb[], headers jsonb[] -> SETOF bigint",
		"queue_name text, msgs jsonb[], delay integer -> SETOF bigint",
		"queue_name text, msgs jsonb[], delay timestamp with time zone -> SETOF bigint",
		"queue_name text, msgs jsonb[], headers jsonb[], delay integer -> SETOF bigint",
		"queue_name text, msgs jsonb[], headers jsonb[], delay timestamp with time zone -> SETOF bigint",
	},
	"read": {
		"queue_name text, vt integer, qty integer, conditional jsonb DEFAULT '{}'::jsonb -> SETOF pgmq.message_record",
	},
	"read_with_poll": {
		"queue_name text, vt integer, qty integer, max_poll_seconds integer DEFAULT 5, poll_interval_ms integer DEFAULT 100, conditional jsonb DEFAULT '{}'::jsonb -> SETOF pgmq.message_record",
	},
	"pop": {"queue_name text, qty integer DEFAULT 1 -> SETOF pgmq.message_record"},
	"delete": {
		"queue_name text, msg_id bigint -> boolean",
		"queue_name text, msg_ids bigint[] -> SETOF bigint",
	},
	"archive": {
		"queue_name text, msg_id bigint -> boolean",
		"queue_name text, msg_ids bigint[] -> SETOF bigint",
	},
	"set_vt": {
		"queue_name text, msg_id bigint, vt integer -> SETOF pgmq.message_record",
		"queue_name text, msg_id bigint, vt timestamp with time zone -> SETOF pgmq.message_record",
		"queue_name text, msg_ids bigint[], vt integer -> SETOF pgmq.message_record",
		"queue_name text, msg_ids bigint[], vt timestamp with time zone -> SETOF pgmq.message_record",
	},
}

func TestCatalogFunctions(t *testing.T) {
	t.Parallel()
	db := newDB(t)

	names := make([]string, 0, len(expectedFunctions))
	for name := range expectedFunctions {
		names = append(names, name)
	}

	type proc struct {
		Name, Args, Result, Kind string
		SecDef                   bool
	}
	var procs []proc
	catalogTx(t, db, func(tx pgx.Tx) {
		rows, err := tx.Query(t.Context(), `
			SELECT p.proname::text, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
			       p.prokind::text, p.prosecdef
			FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = 'pgmq' AND p.proname = ANY($1::text[])`, names)
		require.NoError(t, err)
		procs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (proc, error) {
			var p proc
			err := row.Scan(&p.Name, &p.Args, &p.Result, &p.Kind, &p.SecDef)
			return p, err
		})
		require.NoError(t, err)
	})

	got := map[string][]string{}
	for _, p := range procs {
		got[p.Name] = append(got[p.Name], p.Args+" -> "+p.Result)
		require.Equal(t, "f", p.Kind, "%s(%s) is a plain function", p.Name, p.Args)
		require.False(t, p.SecDef, "%s(%s) must be SECURITY INVOKER", p.Name, p.Args)
	}
	for name, want := range expectedFunctions {
		have := got[name]
		slices.Sort(have)
		want = slices.Clone(want)
		slices.Sort(want)
		require.Equal(t, want, have, "overload set of pgmq.%s", name)
	}

	// Feature probes callers use (§10) resolve.
	for _, sig := range []string{
		"pgmq.send(text,jsonb,jsonb,integer)",
		"pgmq.send(text,jsonb,jsonb,timestamptz)",
		"pgmq.send_batch(text,jsonb[],jsonb[],timestamptz)",
		"pgmq.set_vt(text,bigint[],timestamptz)",
		"pgmq.pop(text,integer)",
	} {
		var ok bool
		require.NoError(t, db.QueryRow(t.Context(), "SELECT to_regprocedure($1::text) IS NOT NULL", sig).Scan(&ok))
		require.True(t, ok, sig)
	}
}

type column struct {
	Name     string
	Type     string
	NotNull  bool
	Default  string
	Identity string // pg_attribute.attidentity: "a" = GENERATED ALWAYS, "" = none
}

func columnsOf(t *testing.T, db querier, relation string) []column {
	t.Helper()
	var cols []column
	catalogTx(t, db, func(tx pgx.Tx) {
		rows, err := tx.Query(t.Context(), `
			SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			       coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text
			FROM pg_attribute a
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, relation)
		require.NoError(t, err)
		cols, err = pgx.CollectRows(rows, pgx.RowToStructByPos[column])
		require.NoError(t, err)
	})
	return cols
}

func TestCatalogQueueTables(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	createQueue(t, db, "shape")

	// §4.1: fresh-install column order (upgraded installs append last_read_at).
	require.Equal(t, []column{
		{"msg_id", "bigint", true, "", "a"},
		{"read_ct", "integer", true, "0", ""},
		{"enqueued_at", "timestamp with time zone", true, "now()", ""},
		{"last_read_at", "timestamp with time zone", false, "", ""},
		{"vt", "timestamp with time zone", true, "", ""},
		{"message", "jsonb", false, "", ""},
		{"headers", "jsonb", false, "", ""},
	}, columnsOf(t, db, "pgmq.q_shape"))

	// §4.2: same types, msg_id without identity, archived_at NOT NULL DEFAULT now().
	archive := columnsOf(t, db, "pgmq.a_shape")
	type nameType struct{ Name, Type string }
	var shape []nameType
	for _, c := range archive {
		shape = append(shape, nameType{c.Name, c.Type})
	}
	require.Equal(t, []nameType{
		{"msg_id", "bigint"},
		{"read_ct", "integer"},
		{"enqueued_at", "timestamp with time zone"},
		{"last_read_at", "timestamp with time zone"},
		{"archived_at", "timestamp with time zone"},
		{"vt", "timestamp with time zone"},
		{"message", "jsonb"},
		{"headers", "jsonb"},
	}, shape)
	require.Equal(t, column{"msg_id", "bigint", true, "", ""}, archive[0])
	require.Equal(t, column{"archived_at", "timestamp with time zone", true, "now()", ""}, archive[4])
	require.False(t, archive[3].NotNull, "last_read_at is nullable")
	require.False(t, archive[6].NotNull, "message is nullable")
	require.False(t, archive[7].NotNull, "headers is nullable")

	// §4.4
	require.Equal(t, []column{
		{"queue_name", "character varying", true, "", ""},
		{"is_partitioned", "boolean", true, "", ""},
		{"is_unlogged", "boolean", true, "", ""},
		{"created_at", "timestamp with time zone", true, "now()", ""},
	}, columnsOf(t, db, "pgmq.meta"))
}

func TestCatalogIndexesAndSequence(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	createQueue(t, db, "idx")
	ctx := t.Context()

	type index struct {
		Name, Table string
		Primary     bool
		Unique      bool
		Def         string
	}
	var got []index
	catalogTx(t, db, func(tx pgx.Tx) {
		rows, err := tx.Query(ctx, `
			SELECT ic.relname::text, tc.relname::text, i.indisprimary, i.indisunique,
			       pg_get_indexdef(i.indexrelid)
			FROM pg_index i
			JOIN pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_class tc ON tc.oid = i.indrelid
			JOIN pg_namespace n ON n.oid = tc.relnamespace
			WHERE n.nspname = 'pgmq' AND tc.relname IN ('q_idx', 'a_idx', 'meta')
			ORDER BY ic.relname`)
		require.NoError(t, err)
		got, err = pgx.CollectRows(rows, pgx.RowToStructByPos[index])
		require.NoError(t, err)
	})
	require.Equal(t, []index{
		{"a_idx_pkey", "a_idx", true, true, "CREATE UNIQUE INDEX a_idx_pkey ON pgmq.a_idx USING btree (msg_id)"},
		{"archived_at_idx_idx", "a_idx", false, false, "CREATE INDEX archived_at_idx_idx ON pgmq.a_idx USING btree (archived_at)"},
		{"meta_queue_name_key", "meta", false, true, "CREATE UNIQUE INDEX meta_queue_name_key ON pgmq.meta USING btree (queue_name)"},
		{"q_idx_pkey", "q_idx", true, true, "CREATE UNIQUE INDEX q_idx_pkey ON pgmq.q_idx USING btree (msg_id)"},
		{"q_idx_vt_idx", "q_idx", false, false, "CREATE INDEX q_idx_vt_idx ON pgmq.q_idx USING btree (vt)"},
	}, got)

	// The identity sequence metrics() reads.
	var seq *string
	require.NoError(t, db.QueryRow(ctx, "SELECT pg_get_serial_sequence('pgmq.q_idx', 'msg_id')").Scan(&seq))
	require.NotNil(t, seq)
	require.Equal(t, "pgmq.q_idx_msg_id_seq", *seq)

	// Queue tables are ordinary logged tables.
	var persistence string
	require.NoError(t, db.QueryRow(ctx, "SELECT relpersistence::text FROM pg_class WHERE oid = 'pgmq.q_idx'::regclass").Scan(&persistence))
	require.Equal(t, "p", persistence)
}

func TestCatalogCompositeTypes(t *testing.T) {
	t.Parallel()
	db := newDB(t)

	fields := func(typ string) [][2]string {
		var out [][2]string
		catalogTx(t, db, func(tx pgx.Tx) {
			rows, err := tx.Query(t.Context(), `
				SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
				FROM pg_type ty JOIN pg_attribute a ON a.attrelid = ty.typrelid
				WHERE ty.oid = $1::text::regtype AND a.attnum > 0 AND NOT a.attisdropped
				ORDER BY a.attnum`, typ)
			require.NoError(t, err)
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]string, error) {
				var f [2]string
				err := row.Scan(&f[0], &f[1])
				return f, err
			})
			require.NoError(t, err)
		})
		return out
	}

	require.Equal(t, [][2]string{
		{"msg_id", "bigint"},
		{"read_ct", "integer"},
		{"enqueued_at", "timestamp with time zone"},
		{"last_read_at", "timestamp with time zone"},
		{"vt", "timestamp with time zone"},
		{"message", "jsonb"},
		{"headers", "jsonb"},
	}, fields("pgmq.message_record"))
	require.Equal(t, [][2]string{
		{"queue_name", "character varying"},
		{"is_partitioned", "boolean"},
		{"is_unlogged", "boolean"},
		{"created_at", "timestamp with time zone"},
	}, fields("pgmq.queue_record"))
	require.Equal(t, [][2]string{
		{"queue_name", "text"},
		{"queue_length", "bigint"},
		{"newest_msg_age_sec", "integer"},
		{"oldest_msg_age_sec", "integer"},
		{"total_messages", "bigint"},
		{"scrape_time", "timestamp with time zone"},
		{"queue_visible_length", "bigint"},
		{"default_partition_length", "bigint"},
	}, fields("pgmq.metrics_result"))
}

func TestGrantsToPgMonitor(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	createQueue(t, db, "mon") // created after install: covered by default privileges

	var usage, create bool
	require.NoError(t, db.QueryRow(ctx, `SELECT has_schema_privilege('pg_monitor', 'pgmq', 'USAGE'),
		has_schema_privilege('pg_monitor', 'pgmq', 'CREATE')`).Scan(&usage, &create))
	require.True(t, usage)
	require.False(t, create)

	for _, rel := range []string{"pgmq.meta", "pgmq.q_mon", "pgmq.a_mon"} {
		var sel, ins, upd, del bool
		require.NoError(t, db.QueryRow(ctx, `SELECT has_table_privilege('pg_monitor', $1::text, 'SELECT'),
			has_table_privilege('pg_monitor', $1::text, 'INSERT'),
			has_table_privilege('pg_monitor', $1::text, 'UPDATE'),
			has_table_privilege('pg_monitor', $1::text, 'DELETE')`, rel).Scan(&sel, &ins, &upd, &del))
		require.True(t, sel, rel)
		require.False(t, ins || upd || del, "pg_monitor gets SELECT only on %s", rel)
	}
	var seqSel bool
	require.NoError(t, db.QueryRow(ctx,
		"SELECT has_sequence_privilege('pg_monitor', 'pgmq.q_mon_msg_id_seq', 'SELECT')").Scan(&seqSel))
	require.True(t, seqSel)
}
