package consumer

import "sync"

// Stats are a Consumer's totals since New, for dashboards and the demo's
// cross-check. Read = Handled + Duplicates + Failed + DeadLettered +
// Released + Expired once no batch is in progress.
type Stats struct {
	Result
	// Batches counts reads that returned at least one message.
	Batches int `json:"batches"`
	// Errors counts database errors (reads, acknowledgements, moves,
	// lease extensions).
	Errors int `json:"errors"`
}

// stats accumulates Stats; ProcessOnce may run concurrently.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func (s *stats) add(r Result, errs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Result.add(r)
	if r.Read > 0 {
		s.s.Batches++
	}
	s.s.Errors += errs
}

func (s *stats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}
