package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

// Publishing in your own transaction: the step result and its durable events
// commit together; after-commit fast events go out when InTx commits.
func ExampleClient_CompleteStepTx() {
	ctx := context.Background()
	pool := testdb.Example() // your *pgxpool.Pool, migrated with migrations.Migrate

	tpl, _ := template.LoadFile("../test/templates/good/domain_event_publishing.yaml")
	client, _ := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	defer client.Close(ctx)
	_ = client.ApplyTemplate(ctx, tpl)
	taskID, _ := client.CreateTask(ctx, events.CreateTaskParams{Namespace: "domain_events",
		Name: "domain_event_publishing", Context: json.RawMessage(`{"order_id":"8c8a1f8e-6f57-4b0e-9d1c-2f8b8a0e4b11","customer_id":"c-1"}`)})
	steps, _ := events.TaskSteps(ctx, pool, taskID)
	validate, payment := steps[0].StepUUID, steps[1].StepUUID
	_, _ = events.StartStep(ctx, pool, validate)
	_, _ = client.CompleteStep(ctx, validate, json.RawMessage(`{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`))
	_, _ = events.StartStep(ctx, pool, payment)

	err := client.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// ... your own writes in tx ...
		comp, err := client.CompleteStepTx(ctx, tx, payment, json.RawMessage(`{"transaction_id":"txn-1","amount":42.5}`))
		if err != nil {
			return err
		}
		for _, p := range comp.Published {
			fmt.Println("published", p.Name, p.Mode, p.Queue)
		}
		for _, s := range comp.Skipped {
			fmt.Println("skipped", s.Name, s.Reason)
		}
		return nil
	})
	fmt.Println("committed:", err == nil)
	// Output:
	// published payment.processed broadcast domain_events_domain_events
	// skipped payment.failed.retryable condition_not_met
	// skipped payment.failed.permanent condition_not_met
	// committed: true
}

// A worker records under its claim: if the step was released or recovered
// as stale while the handler ran (and maybe claimed again), the late
// outcome changes nothing and the error says so.
func ExampleClient_CompleteClaimedStep() {
	ctx := context.Background()
	pool := testdb.Example() // your *pgxpool.Pool, migrated with migrations.Migrate

	tpl, _ := template.LoadFile("../test/templates/good/domain_event_publishing.yaml")
	client, _ := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	defer client.Close(ctx)
	_ = client.ApplyTemplate(ctx, tpl)
	taskID, _ := client.CreateTask(ctx, events.CreateTaskParams{Namespace: "domain_events",
		Name: "domain_event_publishing", Context: json.RawMessage(`{"order_id":"8c8a1f8e-6f57-4b0e-9d1c-2f8b8a0e4b11","customer_id":"c-1"}`)})
	steps, _ := events.TaskSteps(ctx, pool, taskID)

	step, _ := events.StartStep(ctx, pool, steps[0].StepUUID) // the claim: step.ClaimID
	// ... the handler runs; meanwhile an operator releases the step and it is claimed again ...
	_, _ = events.ReleaseStep(ctx, pool, step.StepUUID, "presumed hung")
	again, _ := events.StartStep(ctx, pool, step.StepUUID)

	result := json.RawMessage(`{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`)
	_, err := client.CompleteClaimedStep(ctx, step.StepUUID, step.ClaimID, result)
	fmt.Println("late outcome superseded:", errors.Is(err, events.ErrSuperseded))
	comp, err := client.CompleteClaimedStep(ctx, again.StepUUID, again.ClaimID, result)
	fmt.Println("current claim recorded:", err == nil, comp.Step.State)
	// Output:
	// late outcome superseded: true
	// current claim recorded: true complete
}

// Subscribing to fast events: one Listener per process feeds a Bus; each
// subscriber has its own queue and goroutine.
func ExampleBus_Subscribe() {
	ctx := context.Background()
	pool := testdb.Example()

	bus := events.NewBus(events.BusConfig{})
	received := make(chan events.Event, 1)
	unsubscribe, err := bus.Subscribe("order.*", func(_ context.Context, ev events.Event) error {
		received <- ev
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unsubscribe()
	listener, _ := events.NewListener(pool, bus, events.ListenerConfig{})
	_ = listener.Start(ctx) // returns once LISTEN is active
	defer func() {
		_ = listener.Stop(ctx)
		_, _ = bus.Close(ctx)
	}()

	tpl, _ := template.LoadFile("../test/templates/good/domain_event_publishing.yaml")
	client, _ := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	defer client.Close(ctx)
	_ = client.ApplyTemplate(ctx, tpl)
	taskID, _ := client.CreateTask(ctx, events.CreateTaskParams{Namespace: "domain_events",
		Name: "domain_event_publishing", Context: json.RawMessage(`{"order_id":"8c8a1f8e-6f57-4b0e-9d1c-2f8b8a0e4b11","customer_id":"c-1"}`)})
	steps, _ := events.TaskSteps(ctx, pool, taskID)
	_, _ = events.StartStep(ctx, pool, steps[0].StepUUID)
	_, _ = client.CompleteStep(ctx, steps[0].StepUUID, json.RawMessage(`{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`))

	select {
	case ev := <-received:
		fmt.Println(ev.EventName, ev.Metadata.StepName)
	case <-time.After(5 * time.Second):
		fmt.Println("no event")
	}
	// Output: order.validated domain_events_validate_order
}
