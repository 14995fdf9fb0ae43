package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stepevents/stepevents/db"
	"github.com/stepevents/stepevents/events/template"
)

// MaxResultBytes bounds a step result or error document.
const MaxResultBytes = 1 << 20

// Failure describes a failed attempt.
type Failure struct {
	Message string
	Type    string
	Code    string
	// Permanent forbids a retry whatever attempts remain.
	Permanent bool
	// RetryAfter, when > 0, replaces the step's backoff (capped at its max_backoff_ms).
	RetryAfter time.Duration
}

// PublishedEvent is one event a completion routed.
type PublishedEvent struct {
	EventID   uuid.UUID
	Name      string
	Mode      template.DeliveryMode
	Publisher string
	// Queue and MsgID are set for durable and broadcast events.
	Queue string
	MsgID int64
	// ByReference is true when the fast copy was too big for NOTIFY and
	// travels as a reference to stepevents.fast_event_stash.
	ByReference bool
}

// SkippedEvent is a declaration that produced no event.
type SkippedEvent struct {
	Name      string
	Publisher string
	Reason    string // one of the Skip… constants
	Detail    string
}

// Completion is what recording a step result did.
type Completion struct {
	Step        Step
	Succeeded   bool
	IsRetryable *bool
	Published   []PublishedEvent
	Skipped     []SkippedEvent
	// Errors are routing problems that did not stop the step result from
	// being recorded (a publisher error, an invalid emitted event); only with
	// Config.TolerantPublishers, otherwise they fail the completion.
	Errors []error

	fast []fastItem // after-commit fast copies not yet released
}

// fastBatch gathers the fast copies of every completion in one InTx call.
type fastBatch struct{ items []fastItem }

func (b *fastBatch) take() []fastItem { it := b.items; b.items = nil; return it }

// CompleteStepTx records a step's success with result (JSON) and publishes
// its declared events, all in tx. Two round trips: one to record the result
// and learn which declarations fire, one to send the events (none when
// nothing fires). After-commit fast events are released by InTx, or by
// ReleaseFast once the caller has committed tx.
//
// tx must be READ COMMITTED (step operations refuse other isolation levels
// with ErrInvalidInput). An error from the database (the outcome refused,
// as PostgreSQL aborts a transaction on any error) or after the step was
// recorded (a publisher error, an invalid event, a failed send) leaves tx
// aborted: it can only roll back, so a step never commits without its
// declared events. Input refused in Go, or a ctx cancelled before the
// statement was sent, leave tx as it was. To go on with tx after a failed
// recording, make a savepoint first (tx.Begin) and roll back to it.
//
// Record one step per transaction: it locks the step row, then its task
// row, so a transaction recording two steps of one task can deadlock with a
// worker recording the second. InTx tracks tx itself, not savepoints made
// with tx.Begin: release a savepoint's completions with ReleaseFast.
func (c *Client) CompleteStepTx(ctx context.Context, tx pgx.Tx, stepUUID uuid.UUID, result json.RawMessage) (*Completion, error) {
	p, err := successParams(stepUUID, result)
	if err != nil {
		return nil, err
	}
	return c.recordInTx(ctx, tx, stepUUID, p)
}

// FailStepTx records a failed attempt and publishes the declared events in
// tx. The state machine decides whether the step will retry: the template's
// retryable flag, f.Permanent and the attempts left; retryable_failure and
// permanent_failure follow that decision. Round trips as CompleteStepTx.
func (c *Client) FailStepTx(ctx context.Context, tx pgx.Tx, stepUUID uuid.UUID, f Failure) (*Completion, error) {
	p, err := failureParams(stepUUID, f)
	if err != nil {
		return nil, err
	}
	return c.recordInTx(ctx, tx, stepUUID, p)
}

// CompleteStep is CompleteStepTx in a transaction of its own, in two round
// trips: BEGIN goes with record_step_result, COMMIT with the events (or
// alone when nothing fires). Fast events are released after commit.
func (c *Client) CompleteStep(ctx context.Context, stepUUID uuid.UUID, result json.RawMessage) (*Completion, error) {
	p, err := successParams(stepUUID, result)
	if err != nil {
		return nil, err
	}
	return c.recordAlone(ctx, stepUUID, p)
}

// FailStep is FailStepTx in a transaction of its own, as CompleteStep.
func (c *Client) FailStep(ctx context.Context, stepUUID uuid.UUID, f Failure) (*Completion, error) {
	p, err := failureParams(stepUUID, f)
	if err != nil {
		return nil, err
	}
	return c.recordAlone(ctx, stepUUID, p)
}

// CompleteClaimedStep is CompleteStep for the worker that claimed the step:
// claimID is the ClaimID of the Step that StartStep (or a runner's claim)
// returned. The result is recorded only if the step is still in_progress
// under that claim, checked under the step's row lock in the same
// statement; otherwise nothing changes and the error wraps ErrSuperseded.
// A worker whose step was released, reset or recovered as stale while it
// ran cannot overwrite the attempt that replaced it. Two round trips, as
// CompleteStep.
func (c *Client) CompleteClaimedStep(ctx context.Context, stepUUID uuid.UUID, claimID int64,
	result json.RawMessage) (*Completion, error) {
	p, err := successParams(stepUUID, result)
	if err != nil {
		return nil, err
	}
	p.ClaimID = &claimID
	return c.recordAlone(ctx, stepUUID, p)
}

// FailClaimedStep is FailStep fenced to one claim, as CompleteClaimedStep.
func (c *Client) FailClaimedStep(ctx context.Context, stepUUID uuid.UUID, claimID int64, f Failure) (*Completion, error) {
	p, err := failureParams(stepUUID, f)
	if err != nil {
		return nil, err
	}
	p.ClaimID = &claimID
	return c.recordAlone(ctx, stepUUID, p)
}

func successParams(stepUUID uuid.UUID, result json.RawMessage) (db.RecordStepResultParams, error) {
	if err := checkDocument(result, "result"); err != nil {
		return db.RecordStepResultParams{}, fmt.Errorf("error completing step %s: %w", stepUUID, err)
	}
	return db.RecordStepResultParams{StepUuid: stepUUID, Succeeded: true, Result: result}, nil
}

func failureParams(stepUUID uuid.UUID, f Failure) (db.RecordStepResultParams, error) {
	errDoc, err := json.Marshal(map[string]any{"message": f.Message, "type": f.Type, "code": f.Code, "permanent": f.Permanent})
	if err != nil {
		return db.RecordStepResultParams{}, fmt.Errorf("error encoding failure of step %s: %w", stepUUID, err)
	}
	if err := checkDocument(errDoc, "error"); err != nil {
		return db.RecordStepResultParams{}, fmt.Errorf("error failing step %s: %w", stepUUID, err)
	}
	p := db.RecordStepResultParams{StepUuid: stepUUID, Succeeded: false, Error: errDoc, Permanent: f.Permanent}
	if f.RetryAfter > 0 {
		s := f.RetryAfter.Seconds()
		p.RetryAfterSeconds = &s
	}
	return p, nil
}

// recordInTx records p in the caller's tx. Once record_step_result has
// succeeded, the step is recorded in tx whether or not its events follow,
// so an error after it leaves tx aborted: it can only roll back, never
// commit the step without its events. An error before it (refused input,
// a cancelled ctx, the server refusing the outcome, which aborts tx
// itself) leaves tx as it was.
func (c *Client) recordInTx(ctx context.Context, tx pgx.Tx, stepUUID uuid.UUID, p db.RecordStepResultParams) (*Completion, error) {
	x := inTx(tx)
	comp, err := c.record(ctx, x, stepUUID, p)
	if err != nil && x.recorded {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		// It fails by design (SE007), or because tx already is aborted or
		// its connection gone; either way tx cannot commit.
		_ = c.queries.AbortTransaction(actx, tx, fmt.Sprintf("events of step %s could not be published", stepUUID))
	}
	return comp, err
}

// recordAlone records p in its own transaction (see pipelined) and
// releases the fast events once it committed.
func (c *Client) recordAlone(ctx context.Context, stepUUID uuid.UUID, p db.RecordStepResultParams) (*Completion, error) {
	t, err := c.beginOwnTx(ctx)
	if err != nil {
		return nil, err
	}
	defer t.end(ctx)
	x := &stmtExec{tx: t.conn, first: t.first(), last: t.last()}
	comp, err := c.record(ctx, x, stepUUID, p)
	if err != nil {
		return nil, err
	}
	if err := t.commit(ctx); err != nil {
		return nil, err
	}
	c.ReleaseFast(comp)
	return comp, nil
}

// ReleaseFast sends the after-commit fast events of completions whose
// transaction the caller has committed. Call it only after commit: a
// rolled-back completion's events must not be released. Releasing twice
// sends nothing the second time. It does not wait for delivery.
func (c *Client) ReleaseFast(completions ...*Completion) {
	var items []fastItem
	for _, comp := range completions {
		if comp != nil {
			items = append(items, comp.fast...)
			comp.fast = nil
		}
	}
	c.release(items)
}

func (c *Client) release(items []fastItem) { c.notifier.enqueue(items) }

// checkDocument refuses what jsonb would refuse, before it reaches the
// database, with a message that says what is wrong.
func checkDocument(doc json.RawMessage, what string) error {
	if len(doc) == 0 {
		return nil
	}
	if len(doc) > MaxResultBytes {
		return fmt.Errorf("%s is %d bytes, over the %d-byte limit: %w", what, len(doc), MaxResultBytes, ErrInvalidInput)
	}
	if !utf8.Valid(doc) {
		return fmt.Errorf("%s is not valid UTF-8: %w", what, ErrInvalidInput)
	}
	if !json.Valid(doc) {
		return fmt.Errorf("%s is not valid JSON: %w", what, ErrInvalidInput)
	}
	if hasNULEscape(doc) {
		return fmt.Errorf("%s contains \\u0000, which PostgreSQL jsonb cannot store: %w", what, ErrInvalidInput)
	}
	return nil
}

// hasNULEscape reports a JSON \u0000 escape: the text \u0000 preceded by an
// even number of backslashes (an escaped backslash followed by "u0000" is
// ordinary text and jsonb stores it fine).
func hasNULEscape(doc []byte) bool {
	s := string(doc)
	for i := strings.Index(s, `\u0000`); i >= 0; {
		n := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		next := strings.Index(s[i+1:], `\u0000`)
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}
