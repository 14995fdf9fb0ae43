package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/examples/subscribers"
	"github.com/stepevents/stepevents/migrations"
)

func init() { moreCommands = append(moreCommands, (*app).demoCmd) }

// demoTemplate is a copy of the seed fixture
// (test/templates/good/domain_event_publishing.yaml); demo_test.go keeps
// the two identical.
//
//go:embed demo_template.yaml
var demoTemplate []byte

// Demo settings that are not flags.
const (
	demoNamespace = "domain_events"
	demoQueue     = "pgmq.q_" + demoNamespace + "_domain_events"
	// demoRetryAfter keeps retries quick: the fixture's own backoff starts at 1s.
	demoRetryAfter = 50 * time.Millisecond
	// demoComment marks a database as the demo's own, so a later run may drop it.
	demoComment = "stepevents demo: dropped and recreated by every run of stepevents demo"
	// demoDockerImage ships pgmq; used only when no server is given or found.
	demoDockerImage = "ghcr.io/pgmq/pg17-pgmq"
	demoDockerTag   = "v1.13.0"
)

// demoLocalURLs are tried when no --database-url is given: the usual
// loopback port and socket, as the postgres superuser.
var demoLocalURLs = []string{
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	"postgres:///postgres?host=/var/run/postgresql&user=postgres",
}

var demoDatabaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

type demoOptions struct {
	orders   int
	workers  int
	seed     uint64
	database string
	verbose  bool
	timeout  time.Duration
}

func (a *app) demoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a batch of orders through the step runner and account for every event",
		Long: `demo creates its own database (--demo-database, dropped and recreated on each run) on the
server of --database-url / DATABASE_URL, else on a local server (127.0.0.1:5432 or the usual socket)
if one answers, else on a throwaway PostgreSQL started in Docker. It migrates it, applies the seed's
domain_event_publishing template, and runs --orders orders through the step runner with a seeded mix
of successes, retryable failures that later succeed, and permanent failures, with the logging and
metrics subscribers listening for fast events. It ends with a summary and a cross-check that the
durable events the runner's completions published are exactly the rows in the pgmq queue (plain
SQL); it exits 1 if they differ.`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return o.validate() },
		RunE:    runE(func(cmd *cobra.Command, _ []string) error { return a.demo(cmd.Context(), o) }),
	}
	f := cmd.Flags()
	f.IntVar(&o.orders, "orders", 200, "orders (tasks) to run")
	f.IntVar(&o.workers, "workers", 8, "runner workers")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the order mix (same seed, same mix)")
	f.StringVar(&o.database, "demo-database", "stepevents_demo", "name of the demo's own database on the server")
	f.BoolVar(&o.verbose, "verbose", false, "log every event and the runner's work to stderr")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up if the orders have not finished by then")
	return a.withJSON(cmd)
}

// validate checks the flags' values: a bad one is a usage error (exit 2).
func (o demoOptions) validate() error {
	if o.orders < 1 || o.orders > 100_000 {
		return fmt.Errorf("--orders must be between 1 and 100000, got %d", o.orders)
	}
	if o.workers < 1 || o.workers > 256 {
		return fmt.Errorf("--workers must be between 1 and 256, got %d", o.workers)
	}
	if !demoDatabaseName.MatchString(o.database) {
		return fmt.Errorf("--demo-database %q is not a plain lower-case name (letters, digits, _)", o.database)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout must be a positive duration like 5m, got %s", o.timeout)
	}
	return nil
}

// demo runs the demo end to end; o has been validated.
func (a *app) demo(ctx context.Context, o demoOptions) error {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(a.stderr, nil))
	}
	adminURL, stopServer, err := a.demoServer(ctx)
	if err != nil {
		return err
	}
	defer stopServer()
	cfg, err := demoCreateDatabase(ctx, adminURL, o.database)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(o.workers + 4)
	readCommitted(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("error connecting to the demo database: %w", err)
	}
	defer pool.Close()
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	fmt.Fprintf(a.stderr, "stepevents demo: %d orders, %d workers, seed %d, database %s\n", o.orders, o.workers,
		o.seed, where)

	if err := migrations.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("error migrating the demo database: %w", err)
	}
	tpl, err := template.Load("demo_template.yaml", demoTemplate)
	if err != nil {
		return fmt.Errorf("error loading the demo template: %w", err)
	}
	client, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All(), Logger: logger})
	if err != nil {
		return fmt.Errorf("error creating the client: %w", err)
	}
	defer func() { _ = client.Close(context.WithoutCancel(ctx)) }()
	if err := client.ApplyTemplate(ctx, tpl); err != nil {
		return fmt.Errorf("error applying the demo template: %w", err)
	}

	fast, err := demoStartListening(ctx, pool, logger)
	if err != nil {
		return err
	}
	defer fast.stop()

	plans, err := demoCreateOrders(ctx, pool, o)
	if err != nil {
		return err
	}
	tally := newDemoTally()
	r, err := runner.New(client, pool, runner.Config{Workers: o.workers, PollInterval: 10 * time.Millisecond,
		Logger: logger, Handlers: demoHandlers(), OnRecorded: tally.add})
	if err != nil {
		return fmt.Errorf("error creating the runner: %w", err)
	}
	start := time.Now()
	if err := a.demoRun(ctx, pool, r, o); err != nil {
		return err
	}
	elapsed := time.Since(start)

	// Flush the notifier, then give the listener a moment to deliver the
	// fast copies (at-most-once: the summary reports what arrived).
	if err := client.Close(ctx); err != nil {
		return fmt.Errorf("error flushing fast events: %w", err)
	}
	fast.settle(tally.fastCopies(), 3*time.Second)
	fast.stop()

	sum, err := demoSummarize(ctx, pool, o, plans, tally, fast, client, r, elapsed, where)
	if err != nil {
		return err
	}
	if a.json {
		if err := a.printJSON(sum); err != nil {
			return err
		}
	} else if err := a.printDemoSummary(sum, cfg); err != nil {
		return err
	}
	if !sum.CrossCheck.OK {
		return fmt.Errorf("cross-check failed: %s", sum.CrossCheck.Detail)
	}
	return nil
}

// demoServer finds a server: --database-url, else a local one, else Docker.
// stop releases what it started (the container), if anything.
func (a *app) demoServer(ctx context.Context) (adminURL string, stop func(), err error) {
	noop := func() {}
	if a.databaseURL != "" {
		if err := demoPing(ctx, a.databaseURL); err != nil {
			return "", noop, fmt.Errorf("no database reachable at --database-url: %s", rootCause(err))
		}
		return a.databaseURL, noop, nil
	}
	for _, u := range demoLocalURLs {
		if demoPing(ctx, u) == nil {
			return u, noop, nil
		}
	}
	u, stop, derr := a.demoDocker(ctx)
	if derr == nil {
		return u, stop, nil
	}
	return "", noop, fmt.Errorf("no PostgreSQL for the demo: pass --database-url (or set DATABASE_URL), "+
		"run PostgreSQL on 127.0.0.1:5432 with user postgres, or start Docker (%s)", rootCause(derr))
}

func demoPing(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// demoDocker starts a throwaway PostgreSQL with pgmq. It removes itself
// after ten minutes even if this process is killed; stop removes it now.
func (a *app) demoDocker(ctx context.Context) (string, func(), error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", nil, fmt.Errorf("no Docker engine: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return "", nil, fmt.Errorf("no Docker engine: %w", err)
	}
	fmt.Fprintf(a.stderr, "stepevents demo: starting a throwaway PostgreSQL in Docker (%s:%s)\n", demoDockerImage,
		demoDockerTag)
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: demoDockerImage, Tag: demoDockerTag,
		Env: []string{"POSTGRES_PASSWORD=postgres", "POSTGRES_HOST_AUTH_METHOD=trust"},
		Cmd: []string{"postgres", "-c", "fsync=off"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return "", nil, fmt.Errorf("error starting PostgreSQL in Docker: %w", err)
	}
	stop := func() { _ = pool.Purge(res) }
	_ = res.Expire(600)
	u := fmt.Sprintf("postgres://postgres:postgres@%s/postgres?sslmode=disable", res.GetHostPort("5432/tcp"))
	pool.MaxWait = 2 * time.Minute
	if err := pool.Retry(func() error { return demoPing(ctx, u) }); err != nil {
		stop()
		return "", nil, fmt.Errorf("error waiting for PostgreSQL in Docker: %w", err)
	}
	return u, stop, nil
}

// demoCreateDatabase drops and recreates the demo's own database on the
// server of adminURL and returns a pool config for it. It refuses to drop
// a database that an earlier demo run did not create.
func demoCreateDatabase(ctx context.Context, adminURL, name string) (*pgxpool.Config, error) {
	admin, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, errors.New("invalid --database-url: check its syntax (postgres://user@host:port/db)")
	}
	if admin.Database == name { // one cannot drop the database one is connected to
		admin.Database = "postgres"
	}
	admin.ConnectTimeout = connectTimeout
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the server to create the demo database: %s", rootCause(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	var comment *string
	err = conn.QueryRow(ctx, `SELECT true, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`,
		name).Scan(&exists, &comment)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("error looking for database %s: %w", name, err)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if exists {
		if comment == nil || *comment != demoComment {
			return nil, fmt.Errorf("database %s exists and was not created by stepevents demo: "+
				"choose another --demo-database, or drop it yourself", name)
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
			return nil, fmt.Errorf("error dropping the previous demo database %s: %w", name, err)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return nil, fmt.Errorf("error creating database %s (the role needs CREATEDB): %w", name, err)
	}
	if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+ident+" IS '"+demoComment+"'"); err != nil {
		return nil, fmt.Errorf("error marking database %s as the demo's: %w", name, err)
	}
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("error parsing --database-url: %w", err)
	}
	cfg.ConnConfig.Database = name
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	return cfg, nil
}

// demoPlan is how one order's steps behave, stored in its task context
// (the template's input_schema allows extra fields) so the handlers need
// no state of their own.
type demoPlan struct {
	// Outcome names the scenario: success, retried, declined, out_of_stock.
	Outcome string `json:"outcome"`
	// Step is the step that fails ("" for none).
	Step string `json:"step,omitempty"`
	// Times is how many attempts of Step fail retryably before one
	// succeeds; 0 with Step set is a permanent failure.
	Times int `json:"times,omitempty"`
	// Code is the failure code.
	Code string `json:"code,omitempty"`
}

// demoMix draws an order's plan: about 65% succeed at once, 25% fail
// retryably once or twice and then succeed, 10% fail permanently.
func demoMix(rng *rand.Rand) demoPlan {
	switch n := rng.IntN(100); {
	case n < 65:
		return demoPlan{Outcome: "success"}
	case n < 80:
		return demoPlan{Outcome: "retried", Step: "domain_events_process_payment", Times: 1 + rng.IntN(2),
			Code: "gateway_timeout"}
	case n < 90:
		return demoPlan{Outcome: "retried", Step: "domain_events_update_inventory", Times: 1, Code: "warehouse_busy"}
	case n < 95:
		return demoPlan{Outcome: "declined", Step: "domain_events_process_payment", Code: "card_declined"}
	default:
		return demoPlan{Outcome: "out_of_stock", Step: "domain_events_update_inventory", Code: "out_of_stock"}
	}
}

// demoCreateOrders creates the orders in one transaction and returns how
// many got each outcome.
func demoCreateOrders(ctx context.Context, pool *pgxpool.Pool, o demoOptions) (map[string]int, error) {
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x5e_e0_e1_1d))
	plans := map[string]int{}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for i := range o.orders {
			var id uuid.UUID
			for j := range id {
				id[j] = byte(rng.UintN(256))
			}
			id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80 // a version 4 uuid
			plan := demoMix(rng)
			plans[plan.Outcome]++
			simulate := map[string]string{"success": "none", "retried": "retryable"}[plan.Outcome]
			if simulate == "" {
				simulate = "permanent"
			}
			doc, err := json.Marshal(map[string]any{
				"order_id": id.String(), "customer_id": fmt.Sprintf("cust-%04d", i%500),
				"amount": float64(500+rng.IntN(50_000)) / 100, "simulate_failure": simulate, "demo": plan,
			})
			if err != nil {
				return fmt.Errorf("error encoding order %d: %w", i, err)
			}
			if _, err := events.CreateTask(ctx, tx, events.CreateTaskParams{Namespace: demoNamespace,
				Name: "domain_event_publishing", Context: doc}); err != nil {
				return fmt.Errorf("error creating order %d: %w", i, err)
			}
		}
		return nil
	})
	return plans, err
}

// demoHandlers are the template's four handlers: each follows its order's
// plan and returns a result that satisfies the events its step declares.
func demoHandlers() map[string]runner.HandlerFunc {
	h := func(_ context.Context, s events.Step, t events.Task) (json.RawMessage, error) {
		var in struct {
			OrderID    string   `json:"order_id"`
			CustomerID string   `json:"customer_id"`
			Amount     float64  `json:"amount"`
			Plan       demoPlan `json:"demo"`
		}
		if err := json.Unmarshal(t.Context, &in); err != nil {
			return nil, runner.Permanent(runner.WithCode(fmt.Errorf("unreadable order: %w", err), "bad_order"))
		}
		if in.Plan.Step == s.Name {
			if in.Plan.Times == 0 {
				return nil, runner.Permanent(runner.WithCode(fmt.Errorf("%s: %s", s.Name, in.Plan.Code), in.Plan.Code))
			}
			if s.Attempts <= in.Plan.Times {
				return nil, runner.RetryAfter(runner.WithCode(
					fmt.Errorf("%s: %s (attempt %d)", s.Name, in.Plan.Code, s.Attempts), in.Plan.Code), demoRetryAfter)
			}
		}
		var res any
		switch s.Name {
		case "domain_events_validate_order":
			res = map[string]any{"order_id": in.OrderID, "customer_id": in.CustomerID,
				"validation_timestamp": time.Now().UTC().Format(time.RFC3339)}
		case "domain_events_process_payment":
			res = map[string]any{"transaction_id": "txn_" + strings.ReplaceAll(in.OrderID, "-", "")[:12],
				"amount": in.Amount, "currency": "USD", "payment_method": "card"}
		case "domain_events_update_inventory":
			res = map[string]any{"order_id": in.OrderID, "items_reserved": 1 + len(in.OrderID)%3}
		default:
			res = map[string]any{"channel": []string{"email", "sms", "push"}[len(in.CustomerID)%3]}
		}
		return json.Marshal(res)
	}
	return map[string]runner.HandlerFunc{
		"domain_events.validate_order": h, "domain_events.process_payment": h,
		"domain_events.update_inventory": h, "domain_events.send_notification": h,
	}
}

// demoRun runs the runner until every order has finished (complete or
// error), with a progress bar on stderr, then stops it.
func (a *app) demoRun(ctx context.Context, pool *pgxpool.Pool, r *runner.Runner, o demoOptions) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(runCtx) }()
	stopRunner := func() error {
		cancel()
		return <-runErr
	}
	bar := progressbar.NewOptions(o.orders, progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription("orders"), progressbar.OptionShowCount(), progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetPredictTime(false))
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var done int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stepevents.tasks WHERE state IN ('complete', 'error')`).
			Scan(&done); err != nil {
			_ = stopRunner()
			return fmt.Errorf("error counting finished orders: %w", err)
		}
		_ = bar.Set(done)
		if done >= o.orders {
			_ = bar.Finish()
			fmt.Fprintln(a.stderr)
			break
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			_ = stopRunner()
			return fmt.Errorf("the orders did not finish within --timeout %s (%d of %d done)", o.timeout, done, o.orders)
		case <-ctx.Done():
			_ = stopRunner()
			return fmt.Errorf("demo interrupted: %w", ctx.Err())
		}
	}
	if err := stopRunner(); err != nil {
		return fmt.Errorf("error stopping the runner: %w", err)
	}
	return nil
}

// demoTally counts what the runner's completions published.
type demoTally struct {
	mu      sync.Mutex
	events  map[[2]string]int // (name, mode) -> published
	durable map[uuid.UUID]int // event id -> times reported, for events sent to pgmq
	fast    int               // fast copies (fast and broadcast events)
	routing int               // routing errors reported by completions
}

func newDemoTally() *demoTally {
	return &demoTally{events: map[[2]string]int{}, durable: map[uuid.UUID]int{}}
}

func (t *demoTally) add(c *events.Completion) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.routing += len(c.Errors)
	for _, p := range c.Published {
		t.events[[2]string{p.Name, string(p.Mode)}]++
		if p.Queue != "" {
			t.durable[p.EventID]++
		}
		if p.Mode == template.DeliveryFast || p.Mode == template.DeliveryBroadcast {
			t.fast++
		}
	}
}

func (t *demoTally) fastCopies() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fast
}

// demoFast is the fast-event side: listener, bus and subscribers.
type demoFast struct {
	listener *events.Listener
	bus      *events.Bus
	metrics  *subscribers.EventMetricsCollector
	once     sync.Once
	health   events.ListenerHealth
	busStats events.BusStats
}

func demoStartListening(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (*demoFast, error) {
	f := &demoFast{bus: events.NewBus(events.BusConfig{Logger: logger}),
		metrics: subscribers.NewEventMetricsCollector()}
	if _, err := f.bus.Subscribe("*", subscribers.NewLoggingSubscriber(logger, "demo"), events.WithName("logging")); err != nil {
		_, _ = f.bus.Close(ctx)
		return nil, fmt.Errorf("error subscribing the logging subscriber: %w", err)
	}
	if _, err := f.bus.Subscribe("*", f.metrics.Handler(), events.WithName("metrics"),
		events.WithQueueSize(16_384)); err != nil {
		_, _ = f.bus.Close(ctx)
		return nil, fmt.Errorf("error subscribing the metrics subscriber: %w", err)
	}
	l, err := events.NewListener(pool, f.bus, events.ListenerConfig{Logger: logger})
	if err == nil {
		err = l.Start(ctx)
	}
	if err != nil {
		_, _ = f.bus.Close(ctx)
		return nil, fmt.Errorf("error starting the listener: %w", err)
	}
	f.listener = l
	return f, nil
}

// settle waits until the metrics subscriber has seen n fast events, or
// for at most wait: fast events are at-most-once, so some may never come.
func (f *demoFast) settle(n int, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for f.metrics.Snapshot().EventsReceived < uint64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// stop stops the listener, then drains and closes the bus, keeping their
// final statistics. It is idempotent.
func (f *demoFast) stop() {
	f.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.health = f.listener.Health(ctx)
		_ = f.listener.Stop(ctx)
		_, _ = f.bus.Close(ctx)
		f.busStats = f.bus.Stats()
	})
}

// demoSummary is what the demo reports (the --json output).
type demoSummary struct {
	Database       string         `json:"database"`
	Orders         int            `json:"orders"`
	Workers        int            `json:"workers"`
	Seed           uint64         `json:"seed"`
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	StepsPerSecond float64        `json:"steps_per_second"`
	Plans          map[string]int `json:"plans"`
	// Tasks, Steps and Attempts are read with SQL after the run.
	Tasks    map[string]int `json:"tasks"`
	Steps    map[string]int `json:"steps"`
	Attempts int            `json:"attempts"`
	// Events lists every event name and mode: published according to the
	// completions, queued according to SQL (durable and broadcast), and
	// received by the metrics subscriber (fast and broadcast).
	Events      []demoEventCount           `json:"events"`
	Router      events.RouterStatsSnapshot `json:"router"`
	Bus         events.BusStats            `json:"bus"`
	Listener    events.ListenerHealth      `json:"listener"`
	Subscribers subscribers.EventMetrics   `json:"subscribers"`
	Runner      runner.Stats               `json:"runner"`
	// CompletionErrors counts routing problems the completions reported
	// (publisher errors, invalid emitted events); the step results stood.
	CompletionErrors int            `json:"completion_errors"`
	CrossCheck       demoCrossCheck `json:"cross_check"`
}

type demoEventCount struct {
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	Published int    `json:"published"`
	Queued    *int   `json:"queued,omitempty"`
	Received  *int   `json:"received,omitempty"`
}

// demoCrossCheck compares the durable events the completions reported with
// the rows of the pgmq queue.
type demoCrossCheck struct {
	Queue string `json:"queue"`
	// Reported counts durable and broadcast events the runner's
	// completions published (each with its pgmq msg_id).
	Reported int `json:"reported"`
	// QueueRows counts the queue's rows; DistinctEventIDs their event ids.
	QueueRows        int    `json:"queue_rows"`
	DistinctEventIDs int    `json:"distinct_event_ids"`
	Missing          int    `json:"missing"`    // reported but not in the queue
	Unexpected       int    `json:"unexpected"` // in the queue but never reported
	OK               bool   `json:"ok"`
	Detail           string `json:"detail"`
}

func demoSummarize(ctx context.Context, pool *pgxpool.Pool, o demoOptions, plans map[string]int, tally *demoTally,
	fast *demoFast, client *events.Client, r *runner.Runner, elapsed time.Duration, where string) (*demoSummary, error) {
	s := &demoSummary{Database: where, Orders: o.orders, Workers: o.workers, Seed: o.seed,
		ElapsedSeconds: elapsed.Seconds(), Plans: plans, Router: client.Stats(), Bus: fast.busStats,
		Listener: fast.health, Subscribers: fast.metrics.Snapshot(), Runner: r.Stats()}
	var err error
	if s.Tasks, err = demoCountBy(ctx, pool, `SELECT state, count(*) FROM stepevents.tasks GROUP BY 1`); err != nil {
		return nil, err
	}
	if s.Steps, err = demoCountBy(ctx, pool, `SELECT state, count(*) FROM stepevents.workflow_steps GROUP BY 1`); err != nil {
		return nil, err
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(attempts), 0) FROM stepevents.workflow_steps`).
		Scan(&s.Attempts); err != nil {
		return nil, fmt.Errorf("error counting attempts: %w", err)
	}
	if elapsed > 0 {
		s.StepsPerSecond = float64(s.Attempts) / elapsed.Seconds()
	}
	queued, err := demoCountBy(ctx, pool, `SELECT message->>'event_name', count(*) FROM `+demoQueue+` GROUP BY 1`)
	if err != nil {
		return nil, err
	}

	tally.mu.Lock()
	defer tally.mu.Unlock()
	s.CompletionErrors = tally.routing
	seen := map[string]bool{}
	for k, n := range tally.events {
		name, mode := k[0], k[1]
		seen[name] = true
		e := demoEventCount{Name: name, Mode: mode, Published: n}
		if mode != string(template.DeliveryFast) {
			q := queued[name]
			e.Queued = &q
		}
		if mode != string(template.DeliveryDurable) {
			rcv := int(s.Subscribers.ByEventName[name])
			e.Received = &rcv
		}
		s.Events = append(s.Events, e)
	}
	for name, n := range queued { // in the queue but never reported: shown, and fails the cross-check
		if !seen[name] {
			q := n
			s.Events = append(s.Events, demoEventCount{Name: name, Mode: "?", Queued: &q})
		}
	}
	sort.Slice(s.Events, func(i, j int) bool {
		return s.Events[i].Name < s.Events[j].Name || s.Events[i].Name == s.Events[j].Name && s.Events[i].Mode < s.Events[j].Mode
	})
	s.CrossCheck, err = demoCrossCheckQueue(ctx, pool, tally)
	return s, err
}

func demoCountBy(ctx context.Context, pool *pgxpool.Pool, sql string) (map[string]int, error) {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("error running %q: %w", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]any, error) {
		var k string
		var n int
		err := row.Scan(&k, &n)
		return [2]any{k, n}, err
	})
	if err != nil {
		return nil, fmt.Errorf("error reading %q: %w", sql, err)
	}
	m := map[string]int{}
	for _, kv := range out {
		m[kv[0].(string)] = kv[1].(int)
	}
	return m, nil
}

// demoCrossCheckQueue reads the queue with plain SQL and compares it with
// the durable events the completions reported. tally.mu is held.
func demoCrossCheckQueue(ctx context.Context, pool *pgxpool.Pool, tally *demoTally) (demoCrossCheck, error) {
	c := demoCrossCheck{Queue: demoQueue}
	for _, n := range tally.durable {
		c.Reported += n
	}
	rows, err := pool.Query(ctx, `SELECT (message->>'event_id')::uuid FROM `+demoQueue)
	if err != nil {
		return c, fmt.Errorf("error reading %s: %w", demoQueue, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return c, fmt.Errorf("error reading %s: %w", demoQueue, err)
	}
	c.QueueRows = len(ids)
	inQueue := map[uuid.UUID]bool{}
	for _, id := range ids {
		inQueue[id] = true
		if tally.durable[id] == 0 {
			c.Unexpected++
		}
	}
	c.DistinctEventIDs = len(inQueue)
	for id := range tally.durable {
		if !inQueue[id] {
			c.Missing++
		}
	}
	c.OK = c.Reported == c.QueueRows && c.DistinctEventIDs == c.QueueRows && c.Missing == 0 && c.Unexpected == 0
	c.Detail = fmt.Sprintf("%d durable events published by the runner's completions, %d rows in %s "+
		"(%d distinct event ids, %d missing, %d unexpected)", c.Reported, c.QueueRows, c.Queue,
		c.DistinctEventIDs, c.Missing, c.Unexpected)
	return c, nil
}

// printDemoSummary prints the summary as text.
func (a *app) printDemoSummary(s *demoSummary, cfg *pgxpool.Config) error {
	out := a.stdout
	fmt.Fprintf(out, "stepevents demo: %d orders, %d workers, seed %d, database %s\n", s.Orders, s.Workers, s.Seed,
		s.Database)
	fmt.Fprintf(out, "finished in %.2fs: %d step attempts, %.0f attempts/s\n\n", s.ElapsedSeconds, s.Attempts,
		s.StepsPerSecond)

	w := a.table()
	fmt.Fprintln(w, "ORDER PLAN\tORDERS")
	for _, k := range slices.Sorted(maps.Keys(s.Plans)) {
		fmt.Fprintf(w, "%s\t%d\n", k, s.Plans[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "TASK STATE (SQL)\tTASKS")
	for _, k := range slices.Sorted(maps.Keys(s.Tasks)) {
		fmt.Fprintf(w, "%s\t%d\n", k, s.Tasks[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "STEP STATE (SQL)\tSTEPS")
	for _, k := range slices.Sorted(maps.Keys(s.Steps)) {
		fmt.Fprintf(w, "%s\t%d\n", k, s.Steps[k])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)

	w = a.table()
	fmt.Fprintln(w, "EVENT\tMODE\tPUBLISHED\tIN QUEUE (SQL)\tRECEIVED FAST")
	opt := func(p *int) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	for _, e := range s.Events {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Name, e.Mode, e.Published, opt(e.Queued), opt(e.Received))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)

	r := s.Router
	fmt.Fprintf(out, "router:     routed %d (durable %d, fast %d, broadcast %d), fast notified %d, fast delivery errors %d, "+
		"routing errors %d, skipped %s\n", r.TotalRouted, r.DurableRouted, r.FastRouted, r.BroadcastRouted,
		r.FastNotified, r.FastDeliveryErrors, r.RoutingErrors, demoFormatCounts(r.Skipped))
	b := s.Bus
	fmt.Fprintf(out, "bus:        published %d, dispatched %d, delivered %d, dropped %d, handler errors %d, panics %d, gaps %d\n",
		b.Published, b.Dispatched, b.Delivered, b.Dropped, b.HandlerErrors, b.Panics, b.Gaps)
	l := s.Listener
	fmt.Fprintf(out, "listener:   %d notifications, %d events published, %d reconnects, %d dropped\n", l.Received,
		l.Published, l.Reconnects, l.DroppedMalformed+l.DroppedForged+l.DroppedOverflow)
	m := s.Subscribers
	fmt.Fprintf(out, "metrics:    %d fast events received (%d success, %d failure)\n", m.EventsReceived,
		m.SuccessEvents, m.FailureEvents)
	st := s.Runner
	fmt.Fprintf(out, "runner:     claimed %d, completed %d, failed %d, released %d, panics %d, recovered %d, superseded %d, unacknowledged %d, record errors %d, completion routing errors %d\n\n",
		st.Claimed, st.Completed, st.Failed, st.Released, st.Panics, st.Recovered, st.Superseded, st.Unacknowledged, st.RecordErrors,
		s.CompletionErrors)

	if s.CrossCheck.OK {
		fmt.Fprintf(out, "cross-check: OK: %s\n", s.CrossCheck.Detail)
	} else {
		fmt.Fprintf(out, "cross-check: FAILED: %s\n", s.CrossCheck.Detail)
	}
	c := cfg.ConnConfig
	fmt.Fprintf(out, "inspect it: psql 'postgres://%s@%s:%d/%s' -c 'SELECT state, count(*) FROM stepevents.tasks GROUP BY 1'\n",
		c.User, c.Host, c.Port, c.Database)
	return nil
}

func demoFormatCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
