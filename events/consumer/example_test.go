package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/consumer"
	"github.com/stepevents/stepevents/events/template"
	"github.com/stepevents/stepevents/examples/publishers"
	"github.com/stepevents/stepevents/test/testdb"
)

// Consuming durable events: a completed payment step published
// payment.processed to the namespace queue; the consumer hands it to an
// idempotent handler whose own write shares the transaction that records
// the event as handled, then deletes the message.
func ExampleConsumer_ProcessOnce() {
	ctx := context.Background()
	pool := testdb.Example() // your *pgxpool.Pool, migrated with migrations.Migrate

	// Publish one durable event by running the first two steps of an order.
	tpl, _ := template.LoadFile(fixturePath)
	client, _ := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
	defer client.Close(ctx)
	_ = client.ApplyTemplate(ctx, tpl)
	taskID, _ := client.CreateTask(ctx, events.CreateTaskParams{Namespace: "domain_events",
		Name: "domain_event_publishing", Context: json.RawMessage(`{"order_id":"8c8a1f8e-6f57-4b0e-9d1c-2f8b8a0e4b11","customer_id":"c-1"}`)})
	steps, _ := events.TaskSteps(ctx, pool, taskID)
	for i, result := range []string{`{"order_id":"o-1","validation_timestamp":"2026-11-28T10:00:00Z"}`, `{"amount":42.5}`} {
		_, _ = events.StartStep(ctx, pool, steps[i].StepUUID)
		_, _ = client.CompleteStep(ctx, steps[i].StepUUID, json.RawMessage(result))
	}
	_, _ = pool.Exec(ctx, `CREATE TABLE ledger (event_id uuid PRIMARY KEY, amount numeric)`)

	c, err := consumer.New(pool, consumer.Config{Namespace: "domain_events"})
	if err != nil {
		panic(err)
	}
	handler := consumer.Idempotent(pool, "ledger", func(ctx context.Context, tx pgx.Tx, ev events.Event, d consumer.Delivery) error {
		var p struct {
			Amount float64 `json:"amount"`
		}
		if err := json.Unmarshal(ev.Payload.Payload, &p); err != nil {
			return consumer.Permanent(err) // retrying will not help: dead-letter it now
		}
		fmt.Println("handling", ev.EventName, "read", d.ReadCount, "amount", p.Amount)
		_, err := tx.Exec(ctx, `INSERT INTO ledger VALUES ($1, $2)`, ev.EventID, p.Amount)
		return err
	})
	res, err := c.ProcessOnce(ctx, handler) // in a service: c.Run(ctx, handler)
	fmt.Printf("%+v %v\n", res, err)
	// Output:
	// handling payment.processed read 1 amount 42.5
	// {Read:1 Handled:1 Duplicates:0 Failed:0 DeadLettered:0 Released:0 Expired:0} <nil>
}
