package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/runner"
	"github.com/stepevents/stepevents/examples/publishers"
)

// errDeclined is what a payment gateway might answer.
var errDeclined = errors.New("card declined")

func chargeCard(context.Context, json.RawMessage) (string, error) { return "txn_1", nil }

// Example runs the seed template's payment handler until interrupted. A
// handler returns the step's result, or an error: retryable by default,
// Permanent when retrying cannot help, RetryAfter to choose the delay.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // at least Workers+2 connections
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	client, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())

	r, err := runner.New(client, pool, runner.Config{
		Workers: 8,
		Handlers: map[string]runner.HandlerFunc{
			"domain_events.process_payment": func(ctx context.Context, step events.Step, task events.Task) (json.RawMessage, error) {
				txn, err := chargeCard(ctx, task.Context)
				switch {
				case errors.Is(err, errDeclined):
					return nil, runner.Permanent(runner.WithCode(err, "card_declined"))
				case err != nil:
					return nil, runner.RetryAfter(err, 5*time.Second)
				}
				return json.Marshal(map[string]any{"transaction_id": txn, "amount": 42.5, "currency": "USD"})
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Run returns after Ctrl-C, once in-flight handlers have finished or
	// (after Config.ShutdownGrace) their steps have been released.
	if err := r.Run(ctx); err != nil {
		log.Print(err)
	}
}
