package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/migrations"
)

// benchTemplates are the bench's own task templates (namespace bench), kept
// apart from the seed fixture so the bench never depends on files another
// command owns.
//
//go:embed bench_template.yaml bench_bare.yaml bench_durable_only.yaml bench_durable4.yaml bench_fast.yaml bench_fast4.yaml
var benchTemplates embed.FS

// Bench template names, namespace and queue.
const (
	benchNamespace   = "bench"
	benchQueue       = benchNamespace + "_domain_events"
	benchConsumeNS   = "bench_consume"
	benchConsumeQ    = benchConsumeNS + "_domain_events"
	tplPublishing    = "bench_publishing"
	tplBare          = "bench_bare"
	tplDurableOnly   = "bench_durable_only"
	tplDurable4      = "bench_durable4"
	tplFast          = "bench_fast"
	tplFast4         = "bench_fast4"
	benchTaskContext = `{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "customer_id": "c-1", "amount": 42.5}`
	// prepareChunk bounds the tasks one preparation statement creates.
	prepareChunk = 2000
)

// benchResult is the result every measured step completes with; it
// satisfies every bench event schema.
var benchResult = json.RawMessage(`{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", ` +
	`"validation_timestamp": "2026-11-28T10:00:00Z", "transaction_id": "txn_1", "amount": 42.5, ` +
	`"currency": "USD", "items_reserved": 3}`)

// benchEnv is the scratch database and what every scenario shares.
type benchEnv struct {
	dbName      string
	pool        *pgxpool.Pool
	afterCommit *events.Client // FastAfterCommit (the default)
	inTx        *events.Client // FastInTransaction
	// durableMsg and durableHdr are one real durable event as stepevents
	// stores it, so bare-pgmq baselines send exactly the same bytes.
	durableMsg, durableHdr string
}

// createScratch creates a database of its own on admin's server, so the
// bench never touches existing data, and returns its name.
func createScratch(ctx context.Context, admin *pgxpool.Pool) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("error naming the scratch database: %w", err)
	}
	name := "stepevents_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("error creating scratch database %s (the role needs CREATEDB): %w", name, err)
	}
	return name, nil
}

// dropScratch drops the scratch database, closing any session left on it.
func dropScratch(ctx context.Context, admin *pgxpool.Pool, name string) error {
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("error dropping scratch database %s: %w", name, err)
	}
	return nil
}

// openEnv connects to the scratch database, migrates it, applies the bench
// templates and creates the clients.
func openEnv(ctx context.Context, admin *pgxpool.Pool, name string, maxConns int32) (*benchEnv, error) {
	cfg := admin.Config().Copy()
	cfg.ConnConfig.Database = name
	cfg.MaxConns = maxConns
	cfg.ConnConfig.Tracer = commitStamper{} // fast-latency clocks start at COMMIT
	readCommitted(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error connecting to scratch database %s: %w", name, err)
	}
	env := &benchEnv{dbName: name, pool: pool}
	if err := env.init(ctx); err != nil {
		env.close(context.WithoutCancel(ctx))
		return nil, err
	}
	return env, nil
}

func (e *benchEnv) init(ctx context.Context) error {
	if err := migrations.Migrate(ctx, e.pool); err != nil {
		return fmt.Errorf("error migrating scratch database: %w", err)
	}
	for _, f := range []string{"bench_template.yaml", "bench_bare.yaml", "bench_durable_only.yaml",
		"bench_durable4.yaml", "bench_fast.yaml", "bench_fast4.yaml"} {
		data, err := benchTemplates.ReadFile(f)
		if err != nil {
			return fmt.Errorf("error reading embedded %s: %w", f, err)
		}
		tpl, err := template.Load(f, data)
		if err != nil {
			return fmt.Errorf("error loading embedded %s: %w", f, err)
		}
		if err := events.ApplyTemplate(ctx, e.pool, tpl); err != nil {
			return fmt.Errorf("error applying %s: %w", f, err)
		}
	}
	stmts := []string{
		`CREATE TABLE bench_insert (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			created_at timestamptz NOT NULL DEFAULT now(), body text NOT NULL)`,
		`SELECT pgmq.create('` + benchConsumeQ + `')`,
	}
	for _, s := range stmts {
		if _, err := e.pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("error preparing bench tables: %w", err)
		}
	}
	var err error
	if e.afterCommit, err = events.NewClient(ctx, e.pool, &events.Config{Publishers: publishers.All()}); err != nil {
		return fmt.Errorf("error creating the after-commit client: %w", err)
	}
	if e.inTx, err = events.NewClient(ctx, e.pool, &events.Config{Publishers: publishers.All(),
		FastMode: events.FastInTransaction}); err != nil {
		return fmt.Errorf("error creating the in-transaction client: %w", err)
	}
	return e.captureDurable(ctx)
}

// captureDurable completes one durable4 step and keeps its first message,
// the body the bare-pgmq baselines send.
func (e *benchEnv) captureDurable(ctx context.Context) error {
	steps, err := e.prepareSteps(ctx, tplDurable4, 1)
	if err != nil {
		return err
	}
	comp, err := e.afterCommit.CompleteStep(ctx, steps[0], benchResult)
	if err != nil {
		return fmt.Errorf("error completing the capture step: %w", err)
	}
	if len(comp.Published) == 0 || comp.Published[0].MsgID == 0 {
		return fmt.Errorf("the capture step published no durable event (%d skipped, errors %v)", len(comp.Skipped), comp.Errors)
	}
	err = e.pool.QueryRow(ctx, `SELECT message::text, headers::text FROM pgmq.`+
		pgx.Identifier{"q_" + benchQueue}.Sanitize()+` WHERE msg_id = $1`, comp.Published[0].MsgID).
		Scan(&e.durableMsg, &e.durableHdr)
	if err != nil {
		return fmt.Errorf("error reading the captured durable event: %w", err)
	}
	return nil
}

// prepareSteps creates n tasks of template tpl and claims their one step,
// in bulk and outside any clock, and returns the claimed step uuids: each
// is ready to be completed exactly once.
func (e *benchEnv) prepareSteps(ctx context.Context, tpl string, n int) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, 0, n)
	for len(out) < n {
		k := min(prepareChunk, n-len(out))
		ids := make([]uuid.UUID, k)
		for i := range ids {
			ids[i] = uuid.Must(uuid.NewV7())
		}
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT stepevents.create_task($1, $2, NULL, $3::jsonb, u, NULL)
				FROM unnest($4::uuid[]) AS u`, benchNamespace, tpl, benchTaskContext, ids); err != nil {
				return fmt.Errorf("error creating %d %s tasks: %w", k, tpl, err)
			}
			rows, err := tx.Query(ctx, `SELECT (stepevents.start_step(ws.step_uuid)).step_uuid
				FROM stepevents.workflow_steps ws WHERE ws.task_uuid = ANY($1::uuid[])`, ids)
			if err != nil {
				return fmt.Errorf("error starting %s steps: %w", tpl, err)
			}
			steps, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			if err != nil {
				return fmt.Errorf("error starting %s steps: %w", tpl, err)
			}
			out = append(out, steps...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fillQueue sends n copies of the captured durable event to queue.
func (e *benchEnv) fillQueue(ctx context.Context, queue string, n int) error {
	for n > 0 {
		k := min(n, 5000)
		if _, err := e.pool.Exec(ctx, `SELECT pgmq.send_batch($1, array_fill($2::jsonb, ARRAY[$3::int]),
			array_fill($4::jsonb, ARRAY[$3::int]))`, queue, e.durableMsg, k, e.durableHdr); err != nil {
			return fmt.Errorf("error filling queue %s: %w", queue, err)
		}
		n -= k
	}
	return nil
}

// close stops the clients (sending pending fast events) and the pool.
func (e *benchEnv) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, c := range []*events.Client{e.afterCommit, e.inTx} {
		if c != nil {
			_ = c.Close(ctx)
		}
	}
	e.pool.Close()
}

// machineInfo describes the machine and the server's settings that decide
// commit latency.
func machineInfo(ctx context.Context, pool *pgxpool.Pool, dbName string) (benchMachine, error) {
	m := benchMachine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Settings: map[string]string{},
		ScratchDBName: dbName, MemTotal: memTotal(), LoadAvgStart: loadAvg()}
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&m.Postgres); err != nil {
		return m, fmt.Errorf("error reading the server version: %w", err)
	}
	for _, s := range []string{"synchronous_commit", "shared_buffers", "max_connections", "fsync",
		"wal_sync_method", "commit_delay", "max_wal_size", "checkpoint_timeout", "shared_preload_libraries"} {
		var v string
		if err := pool.QueryRow(ctx, "SHOW "+s).Scan(&v); err != nil {
			return m, fmt.Errorf("error reading setting %s: %w", s, err)
		}
		m.Settings[s] = v
	}
	err := pool.QueryRow(ctx, `SELECT CASE
		WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgmq') THEN 'extension'
		ELSE 'stepevents pgmq-compatible schema' END,
		coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)`).Scan(&m.PgmqBackend, &m.TLS)
	if err != nil {
		return m, fmt.Errorf("error probing the pgmq backend: %w", err)
	}
	return m, nil
}

// memTotal is /proc/meminfo's MemTotal, "" where there is none.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// loadAvg is /proc/loadavg's three load averages, "" where there is none:
// other load on the machine is the first suspect of a noisy run.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
