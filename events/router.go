package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events/template"
)

// outgoing collects what one completion sends.
type outgoing struct {
	messages, headers [][]byte
	durableIdx        []int // index into Completion.Published of each message
	fast              []fastItem
	stashIDs          []uuid.UUID
	stashEvents       [][]byte

	// The events of one completion share their raw parts and, with the
	// default publisher, their payload: enc compacts each once, and
	// instances decodes each payload once for all the schemas checking it.
	enc       eventEncoder
	instances []payloadInstance
}

type payloadInstance struct {
	raw  []byte
	inst template.Instance
}

// instance returns raw decoded for schema validation, decoding it only the
// first time these bytes are seen in the completion. It keeps its own copy
// of raw, which a publisher may reuse.
func (o *outgoing) instance(raw []byte) template.Instance {
	for _, p := range o.instances {
		if bytes.Equal(p.raw, raw) {
			return p.inst
		}
	}
	inst := template.DecodeInstance(raw)
	if len(o.instances) < maxMemo {
		o.instances = append(o.instances, payloadInstance{raw: bytes.Clone(raw), inst: inst})
	}
	return inst
}

// stmtExec says what runs each statement of a completion: in the caller's
// pgx.Tx all of them; in CompleteStep's own transaction the first carries
// BEGIN and the last COMMIT (see pipelined).
type stmtExec struct {
	tx          db.DBTX // statements in between
	first, last db.DBTX // record_step_result; emit_events
	key         any     // the pgx.Tx InTx tracks after-commit fast events by
	recorded    bool    // record_step_result succeeded: the step is recorded in the transaction
}

func inTx(tx pgx.Tx) *stmtExec { return &stmtExec{tx: tx, first: tx, last: tx, key: tx} }

func (c *Client) record(ctx context.Context, x *stmtExec, stepUUID uuid.UUID, p db.RecordStepResultParams) (*Completion, error) {
	raw, err := c.queries.RecordStepResult(ctx, x.first, p)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("error recording result of step %s", stepUUID))
	}
	x.recorded = true
	rec, seq, err := decodeRecorded(raw)
	if err != nil {
		return nil, fmt.Errorf("error decoding recorded result of step %s: %w", stepUUID, err)
	}

	step := rec.StepRow.step()
	sc := &StepContext{
		TaskUUID: step.TaskUUID, StepUUID: step.StepUUID, StepName: step.Name,
		Namespace: seq.Task.Namespace, CorrelationID: seq.Task.CorrelationID, TaskContext: seq.Task.Context,
		Attempts: step.Attempts, MaxAttempts: step.MaxAttempts, Succeeded: rec.Succeeded,
		IsRetryable: rec.IsRetryable, DependencyResults: seq.DependencyResults, sequence: rec.Sequence,
	}
	if rec.Succeeded {
		sc.Result = p.Result
	} else {
		var e struct{ Message, Type, Code string }
		_ = json.Unmarshal(p.Error, &e)
		sc.Error = &StepError{Message: e.Message, Type: e.Type, Code: e.Code, Retryable: deref(rec.IsRetryable),
			Attempt: step.Attempts, MaxAttempts: step.MaxAttempts}
	}
	for _, d := range rec.Declarations {
		sc.Declarations = append(sc.Declarations, Declaration{EventName: d.EventName,
			Condition: template.Condition(d.Condition), DeliveryMode: template.DeliveryMode(d.DeliveryMode),
			Publisher: deref(d.Publisher), Fires: d.Fires})
	}

	comp := &Completion{Succeeded: rec.Succeeded, IsRetryable: rec.IsRetryable}
	if len(sc.Declarations) > 0 {
		decls, err := c.templateDecls(ctx, x.tx, rec.TemplateID)
		if err != nil {
			return nil, err
		}
		var out outgoing
		queue := sc.Namespace + "_domain_events"
		for _, d := range sc.Declarations {
			if err := c.route(ctx, sc, d, decls, queue, comp, &out); err != nil {
				return nil, err
			}
		}
		if err := c.emit(ctx, x, queue, comp, &out); err != nil {
			return nil, err
		}
	}
	comp.Step = step
	return comp, nil
}

// route runs one declaration through its publisher and adds what it emits
// to out. An unknown publisher aborts the completion; a publisher error or an
// invalid emitted event aborts it too unless Config.TolerantPublishers, in
// which case it is recorded on comp and the step commits without that event.
func (c *Client) route(ctx context.Context, sc *StepContext, d Declaration, decls *templateDecls,
	queue string, comp *Completion, out *outgoing) error {
	firedBy := DefaultPublisherName
	var emits []Emit
	if d.Publisher == "" {
		emits = defaultPublish(sc, d)
	} else {
		p, ok := c.publishers[d.Publisher]
		if !ok && !d.Fires {
			// A declaration that does not fire needs no publisher: a missing
			// one must not block, say, recording a failure of this step.
			c.stats.skip(SkipConditionNotMet)
			comp.Skipped = append(comp.Skipped, SkippedEvent{Name: d.EventName, Publisher: d.Publisher,
				Reason: SkipConditionNotMet, Detail: fmt.Sprintf("condition %s (succeeded=%t, is_retryable=%s)",
					d.Condition, sc.Succeeded, fmtBool(sc.IsRetryable))})
			return nil
		}
		if !ok {
			c.stats.routingErrors.Add(1)
			return fmt.Errorf("step %s declares %s with publisher %q: %w", sc.StepName, d.EventName, d.Publisher,
				ErrUnknownPublisher)
		}
		firedBy = d.Publisher
		var err error
		emits, err = p.Publish(ctx, sc, d)
		if err != nil {
			c.stats.routingErrors.Add(1)
			return c.routingProblem(comp, fmt.Errorf("publisher %s failed for %s: %w: %w", d.Publisher, d.EventName,
				err, ErrPublisher))
		}
	}
	if len(emits) == 0 {
		reason := SkipConditionNotMet
		if d.Fires {
			reason = SkipPublisherDeclined
		}
		c.stats.skip(reason)
		comp.Skipped = append(comp.Skipped, SkippedEvent{Name: d.EventName, Publisher: firedBy, Reason: reason,
			Detail: fmt.Sprintf("condition %s (succeeded=%t, is_retryable=%s)", d.Condition, sc.Succeeded,
				fmtBool(sc.IsRetryable))})
		return nil
	}
	for _, e := range emits {
		if err := c.buildEvent(sc, d, e, firedBy, decls, queue, comp, out); err != nil {
			c.stats.routingErrors.Add(1)
			if err := c.routingProblem(comp, fmt.Errorf("%w: %w", err, ErrPublisher)); err != nil {
				return err
			}
		}
	}
	return nil
}

// routingProblem fails the completion (the default: a committed step never
// silently lacks an event it should have published) or, with
// TolerantPublishers, records the problem and lets the step commit.
func (c *Client) routingProblem(comp *Completion, err error) error {
	if !c.tolerant {
		return err
	}
	comp.Errors = append(comp.Errors, err)
	return nil
}

func (c *Client) buildEvent(sc *StepContext, d Declaration, e Emit, firedBy string, decls *templateDecls,
	queue string, comp *Completion, out *outgoing) error {
	if err := template.ValidEventName(e.Name); err != nil {
		return fmt.Errorf("publisher %s emitted an invalid event name %q: %w", firedBy, e.Name, err)
	}
	mode := e.Mode
	if mode == "" {
		mode = d.DeliveryMode
	}
	if !mode.Valid() {
		return fmt.Errorf("publisher %s emitted %s with unknown delivery mode %q", firedBy, e.Name, mode)
	}
	payload, err := encodePayload(e.Payload, &out.enc)
	if err != nil {
		return fmt.Errorf("publisher %s emitted %s with a payload that is not JSON: %w", firedBy, e.Name, err)
	}
	info := decls.lookup(sc.StepName, e.Name)
	if info.schema != nil {
		if v := info.schema.ValidateInstance(out.instance(payload)); len(v) > 0 {
			c.stats.skip(SkipInvalidPayload)
			comp.Skipped = append(comp.Skipped, SkippedEvent{Name: e.Name, Publisher: firedBy,
				Reason: SkipInvalidPayload, Detail: joinViolations(v)})
			return nil
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("error generating event id: %w", err)
	}
	ev := Event{
		EventID: id, EventName: e.Name, EventVersion: EventVersion,
		Payload: EventPayload{Payload: payload, TaskSequenceStep: sc.sequence, ExecutionResult: ExecutionResult{
			StepUUID: sc.StepUUID, Success: sc.Succeeded, Status: status(sc.Succeeded), Result: sc.Result, Error: sc.Error}},
		Metadata: EventMetadata{TaskUUID: sc.TaskUUID, StepUUID: sc.StepUUID, StepName: sc.StepName,
			Namespace: sc.Namespace, CorrelationID: sc.CorrelationID, FiredAt: time.Now().UTC(), FiredBy: firedBy},
	}
	full, err := out.enc.appendEvent(nil, &ev)
	if err != nil {
		return fmt.Errorf("error encoding event %s: %w", e.Name, err)
	}
	pub := PublishedEvent{EventID: id, Name: e.Name, Mode: mode, Publisher: firedBy}
	if mode == template.DeliveryFast || mode == template.DeliveryBroadcast {
		if len(full) > maxInlineEvent {
			out.stashIDs = append(out.stashIDs, id)
			out.stashEvents = append(out.stashEvents, full)
			out.fast = append(out.fast, fastItem{id: id})
			pub.ByReference = true
			c.stats.fastOversized.Add(1)
		} else {
			out.fast = append(out.fast, fastItem{id: id, inline: full})
		}
	}
	if mode == template.DeliveryDurable || mode == template.DeliveryBroadcast {
		durable := full
		payloadRedact := info.redact
		if _, declared := decls.byKey[sc.StepName+"\x00"+e.Name]; !declared {
			// A custom publisher's extra event inherits its declaration's redactions.
			payloadRedact = decls.lookup(sc.StepName, d.EventName).redact
		}
		resultRedact := decls.stepRedact[sc.StepName]
		if seq := durableRedactions(sc, decls); len(payloadRedact)+len(resultRedact)+len(seq) > 0 {
			if err := redactEvent(&ev, payloadRedact, resultRedact, seq); err != nil {
				return fmt.Errorf("error redacting %s: %w", e.Name, err)
			}
			if durable, err = out.enc.appendEvent(nil, &ev); err != nil {
				return fmt.Errorf("error encoding event %s: %w", e.Name, err)
			}
		}
		pub.Queue = queue
		out.messages = append(out.messages, durable)
		out.headers = append(out.headers, appendHeaders(nil, id, e.Name))
		out.durableIdx = append(out.durableIdx, len(comp.Published))
	}
	comp.Published = append(comp.Published, pub)
	return nil
}

// emit sends the completion's durable messages, stashed events and (in
// in-transaction mode) notifications in tx, in one round trip.
func (c *Client) emit(ctx context.Context, x *stmtExec, queue string, comp *Completion, out *outgoing) error {
	var notifications []string
	if c.mode == FastInTransaction && len(out.fast) > 0 {
		var err error
		if notifications, err = packEnvelopes(out.fast, c.signer); err != nil {
			return err
		}
	}
	if len(out.messages) > 0 || len(out.stashIDs) > 0 || len(notifications) > 0 {
		ids, err := c.queries.EmitEvents(ctx, x.last, db.EmitEventsParams{
			Queue: queue, Messages: nonNil(out.messages), Headers: nonNil(out.headers), Channel: c.channel,
			Notifications: nonNilS(notifications), StashIds: nonNilU(out.stashIDs), StashEvents: nonNil(out.stashEvents)})
		if err != nil {
			c.stats.routingErrors.Add(uint64(len(comp.Published)))
			return mapError(err, fmt.Sprintf("error publishing events to %s", queue))
		}
		if len(ids) != len(out.durableIdx) {
			return fmt.Errorf("pgmq returned %d ids for %d messages", len(ids), len(out.durableIdx))
		}
		for i, idx := range out.durableIdx {
			comp.Published[idx].MsgID = ids[i]
		}
	}
	for _, p := range comp.Published {
		c.stats.totalRouted.Add(1)
		switch p.Mode {
		case template.DeliveryDurable:
			c.stats.durableRouted.Add(1)
		case template.DeliveryFast:
			c.stats.fastRouted.Add(1)
		case template.DeliveryBroadcast:
			c.stats.broadcastRouted.Add(1)
		}
	}
	if c.mode == FastInTransaction {
		c.stats.fastNotified.Add(uint64(len(out.fast)))
		return nil
	}
	comp.fast = out.fast
	if b, ok := c.pending.Load(x.key); x.key != nil && ok {
		b.(*fastBatch).items = append(b.(*fastBatch).items, out.fast...)
		comp.fast = nil
	}
	return nil
}

// encodePayload returns an emitted payload as JSON. Raw JSON is checked by
// compacting it with enc, which the event's encoding then reuses.
func encodePayload(v any, enc *eventEncoder) (json.RawMessage, error) {
	switch p := v.(type) {
	case json.RawMessage:
		if len(p) == 0 {
			return json.RawMessage(`null`), nil
		}
		if _, err := enc.compact(p); err != nil {
			return nil, err
		}
		return p, nil
	case []byte:
		return encodePayload(json.RawMessage(p), enc)
	default:
		return json.Marshal(v)
	}
}

func status(ok bool) string {
	if ok {
		return "completed"
	}
	return "failed"
}

func fmtBool(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}

func nonNil(b [][]byte) [][]byte {
	if b == nil {
		return [][]byte{}
	}
	return b
}

func nonNilS(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilU(u []uuid.UUID) []uuid.UUID {
	if u == nil {
		return []uuid.UUID{}
	}
	return u
}
