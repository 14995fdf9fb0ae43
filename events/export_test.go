package events

// AppendEvent exposes appendEvent to the benchmarks of package events_test.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) { return appendEvent(dst, ev) }

// EncodeCompletion encodes evs as buildEvent does for one completion: one
// memo of compacted raw parts, and pgmq headers for each.
func EncodeCompletion(evs []Event) (n int, err error) {
	var enc eventEncoder
	for i := range evs {
		b, err := enc.appendEvent(nil, &evs[i])
		if err != nil {
			return 0, err
		}
		n += len(b) + len(appendHeaders(nil, evs[i].EventID, evs[i].EventName))
	}
	return n, nil
}
