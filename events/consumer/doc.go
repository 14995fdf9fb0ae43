// Package consumer reads a namespace's durable domain events from its pgmq
// queue ({namespace}_domain_events) and hands them to a handler.
//
// # Guarantees
//
// Delivery is at-least-once. A message read by a consumer is hidden from the
// others for the visibility timeout (reads use FOR UPDATE SKIP LOCKED, so
// concurrent consumers never get the same visible message). When the handler
// returns nil the message is deleted (or archived); when it fails, panics or
// the process dies, the message reappears after the timeout and is read
// again. A message that fails MaxReads times (or is read more than MaxReads
// times without an answer, or whose handler returns a Permanent error, or
// that is not an event at all) is moved to {namespace}_domain_events_dlq, in
// one transaction, with the reason in its headers (see HeaderDLQReason).
//
// The consumer times its lease on each message on the local monotonic
// clock alone: it ends the visibility timeout after the local time taken
// just before the read (or before the statement that last extended it), so
// it runs out before the database's vt does (the database starts counting
// later). Pending acknowledgements are sent by half of the lease and a
// handler's ctx ends with it; none of this compares the local clock with
// the database's, so skew between the two does not move it. A batch's
// messages are handled one by one, so the leases of those still waiting
// for their turn are extended while earlier handlers run (and before a
// handler starts short of lease): a handler that runs to the end of its
// lease does not make its batch-mates expire unhandled, which would cost
// them reads towards MaxReads. A message whose lease ran out all the same
// is left for another consumer, never handled or released late.
//
// Redelivery means a handler can see an event twice: after a crash between
// handling and acknowledging (handled messages are acknowledged together,
// once per batch), or when a handler outlives the visibility
// timeout. Idempotent (with HandledOnce underneath) records handled event
// ids in stepevents.consumed_events in the handler's own transaction, so
// the handler's database writes happen effectively once; side effects
// outside that transaction (HTTP calls, e-mails) remain at-least-once.
package consumer
