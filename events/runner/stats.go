package runner

import "sync/atomic"

// Stats is a point-in-time copy of a Runner's counters.
type Stats struct {
	// Claimed counts steps claimed (attempts started).
	Claimed uint64 `json:"claimed"`
	// Completed counts successes recorded.
	Completed uint64 `json:"completed"`
	// Failed counts failed attempts recorded: handler errors, panics,
	// timeouts and refused results (not stale recoveries; see Recovered).
	Failed uint64 `json:"failed"`
	// Released counts steps given back unfinished (shutdown, or claimed
	// while stopping): pending again, attempt refunded.
	Released uint64 `json:"released"`
	// Panics counts handler panics (each also counted in Failed).
	Panics uint64 `json:"panics"`
	// TimedOut counts handler errors returned after the step's deadline
	// (each also counted in Failed).
	TimedOut uint64 `json:"timed_out"`
	// Recovered counts stale in_progress steps RecoverStaleSteps failed.
	Recovered uint64 `json:"recovered"`
	// Superseded counts outcomes discarded because their attempt was no
	// longer in progress: recovered as stale by a runner meanwhile, or
	// released or reset (and perhaps claimed again) meanwhile. An outcome
	// whose COMMIT reply was lost lands here only when the step's history
	// could not be read to recognise it (see Unacknowledged).
	Superseded uint64 `json:"superseded"`
	// Unacknowledged counts outcomes (each also in Completed or Failed)
	// that an earlier try committed though the reply to its COMMIT was lost
	// (a connection dropped during commit): the retry found the attempt
	// ended by that very outcome. Their fast events were not sent, and
	// OnRecorded was not called for them (no Completion came back).
	Unacknowledged uint64 `json:"unacknowledged"`
	// RecordErrors counts outcomes that could not be recorded after
	// retries; their steps stay in_progress until recovered as stale.
	RecordErrors uint64 `json:"record_errors"`
	// ClaimErrors counts claims that failed.
	ClaimErrors uint64 `json:"claim_errors"`
	// InFlight is how many handlers are running now.
	InFlight int `json:"in_flight"`
}

type counters struct {
	claimed, completed, failed, released, panics, timedOut atomic.Uint64
	recovered, superseded, unacknowledged, recordErrors    atomic.Uint64
	claimErrors                                            atomic.Uint64
	inFlight                                               atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Claimed: c.claimed.Load(), Completed: c.completed.Load(), Failed: c.failed.Load(),
		Released: c.released.Load(), Panics: c.panics.Load(), TimedOut: c.timedOut.Load(),
		Recovered: c.recovered.Load(), Superseded: c.superseded.Load(), Unacknowledged: c.unacknowledged.Load(),
		RecordErrors: c.recordErrors.Load(), ClaimErrors: c.claimErrors.Load(),
	}
}
