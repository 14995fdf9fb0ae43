// Package runner runs workflow steps: it claims ready steps, calls the Go
// handler registered for each step's handler name, and records the outcome
// with events.Client, so the step result and its declared domain events
// commit in one transaction.
//
// # Claiming
//
// A claim is one statement, stepevents.claim_ready_steps: it picks steps
// that stepevents.step_readiness says are ready (dependencies satisfied,
// attempts left, backoff elapsed), locks them FOR UPDATE SKIP LOCKED and
// starts them (in_progress, attempt counted) before it commits. It walks
// the claim order (oldest task first) in an index and stops at the first
// step it can take, so its cost does not grow with the backlog behind it.
// Concurrent workers and runners never get the same step and never wait
// on each other's steps (two claims in one task wait briefly on its task
// row). Backoff is the database's: a step that failed retryably is not
// ready until its next_retry_at, and the runner never second-guesses it.
//
// # Running and recording
//
// Each handler runs outside any transaction with a deadline: the step's
// timeout_seconds, or Config.StepTimeout. Its result is recorded with
// Client.CompleteClaimedStep, or its error with Client.FailClaimedStep:
// record_step_result first locks the step and checks that the attempt it
// ran is still the step's current in_progress attempt, so an attempt's
// outcome is recorded at most once and never onto a later attempt. The
// check compares the claim, not the attempt number: every claim sets the
// step's claim_id to the id of the in_progress transition it writes, which
// is never reused, while attempt numbers are (release_step refunds an
// attempt, reset_step zeroes the count). The recording is one transaction
// in two round trips (BEGIN with the fenced record_step_result, COMMIT with
// the events); fast events are released after it commits. Wrap a handler's error with
// Permanent to forbid retries, RetryAfter to choose the delay, WithCode to
// set the failure code; a panic is recorded as a failure.
//
// # Stopping
//
// Run returns once its ctx is cancelled and every in-flight handler has
// finished: handlers get Config.ShutdownGrace to finish and have their
// outcome recorded; after that their ctx is cancelled and their steps are
// released (stepevents.release_step: back to pending, attempt refunded),
// and whatever those handlers return later is discarded. A step is either
// recorded or released, never half-recorded.
//
// # Stuck steps
//
// A worker that dies between claim and record (crash, kill -9, lost
// network) leaves its step in_progress with nobody working on it. Such a
// step gets a way forward without an operator: every runner periodically
// (Config.RecoverInterval) calls RecoverStaleSteps, which asks
// stepevents.stale_steps for in_progress steps whose attempt started longer
// ago than their timeout (timeout_seconds, or Config.StepTimeout) plus
// Config.StaleGrace, and records a failure for each through the normal
// publishing path: retryable while attempts remain (the lost attempt
// counts), error once they are used up, and the failure's declared events
// (retryable_failure, permanent_failure, failure, always) are published like
// any other failure's. A step whose failure cannot be recorded (its
// publisher keeps erroring) is skipped for that pass, reported in its
// error, and does not hold up the others. A runner recovers only steps of
// handlers it has.
// Give every runner of a handler the same StepTimeout, or set
// timeout_seconds in the template, so one runner does not declare another's
// slow-but-alive attempt lost; if it does, the live worker's later result is
// discarded (counted as Superseded), never recorded twice.
//
// From psql, SELECT * FROM stepevents.stale_steps('1 minute') lists them;
// an operator can also reset (stepevents step reset) or resolve a step that
// ended in error.
//
// # A lost reply to COMMIT
//
// Recording is retried after errors that are not about the outcome (a
// dropped connection, a deadlock). When the connection dropped after the
// server committed, the retry finds the attempt over; the runner then reads
// the step's history, and if the transition that ended the attempt is this
// very outcome (the same result, or the same failure message), it counts it
// as recorded (Stats.Unacknowledged), not superseded. No Completion came
// back for it, so its fast events are not sent and OnRecorded is not called;
// its durable events are in the queue, committed with it.
package runner
