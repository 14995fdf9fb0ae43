package consumer

import "time"

// SetClock replaces the local clock c reads (time.Now), for the tests of
// package consumer_test that skew it against the database's.
func SetClock(c *Consumer, now func() time.Time) { c.now = now }
