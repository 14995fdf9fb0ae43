// Package publishers holds the custom publishers of the seed fixture
// (domain_event_publishing): PaymentEventPublisher and
// NotificationEventPublisher. They show what a publisher may do: enrich the
// payload from the task context, apply its own condition, choose the mode.
package publishers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stepevents/stepevents/events"
)

// PaymentEventPublisher enriches payment.processed with the amount, currency,
// customer tier and a transaction id.
type PaymentEventPublisher struct{}

// Name is the name templates use in `publisher:`.
func (PaymentEventPublisher) Name() string { return "PaymentEventPublisher" }

// Publish emits payment.processed (declared mode) when its condition holds.
func (PaymentEventPublisher) Publish(_ context.Context, sc *events.StepContext, d events.Declaration) ([]events.Emit, error) {
	if !d.Fires {
		return nil, nil
	}
	var in struct {
		OrderID      string  `json:"order_id"`
		Amount       float64 `json:"amount"`
		CustomerTier string  `json:"customer_tier"`
	}
	_ = json.Unmarshal(sc.TaskContext, &in)
	var res struct {
		TransactionID string  `json:"transaction_id"`
		Amount        float64 `json:"amount"`
		Currency      string  `json:"currency"`
		PaymentMethod string  `json:"payment_method"`
	}
	if len(sc.Result) > 0 {
		if err := json.Unmarshal(sc.Result, &res); err != nil {
			return nil, fmt.Errorf("payment result is not an object: %w", err)
		}
	}
	if res.TransactionID == "" {
		res.TransactionID = "txn_" + sc.StepUUID.String()[:8]
	}
	if res.Amount == 0 {
		res.Amount = in.Amount
	}
	if res.Currency == "" {
		res.Currency = "USD"
	}
	if in.CustomerTier == "" {
		in.CustomerTier = "standard"
	}
	return []events.Emit{{Name: d.EventName, Payload: map[string]any{
		"order_id":       in.OrderID,
		"transaction_id": res.TransactionID,
		"amount":         res.Amount,
		"currency":       res.Currency,
		"payment_method": res.PaymentMethod,
		"customer_tier":  in.CustomerTier,
		"attempt":        sc.Attempts,
		"processed_at":   time.Now().UTC().Format(time.RFC3339Nano),
	}}}, nil
}

// NotificationEventPublisher builds notification.sent from the result's
// channel and the task's order.
type NotificationEventPublisher struct{}

// Name is the name templates use in `publisher:`.
func (NotificationEventPublisher) Name() string { return "NotificationEventPublisher" }

// Publish emits notification.sent when its condition holds.
func (NotificationEventPublisher) Publish(_ context.Context, sc *events.StepContext, d events.Declaration) ([]events.Emit, error) {
	if !d.Fires {
		return nil, nil
	}
	var in struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(sc.TaskContext, &in)
	var res struct {
		Channel string `json:"channel"`
	}
	_ = json.Unmarshal(sc.Result, &res)
	if res.Channel == "" {
		res.Channel = "email"
	}
	return []events.Emit{{Name: d.EventName, Payload: map[string]any{
		"notification_id": "ntf_" + sc.StepUUID.String()[:8],
		"channel":         res.Channel,
		"order_id":        in.OrderID,
	}}}, nil
}

// All returns both publishers, for events.Config.Publishers.
func All() []events.Publisher {
	return []events.Publisher{PaymentEventPublisher{}, NotificationEventPublisher{}}
}
