package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkPackEnvelopes is the notifier's encoding cost per flush: n
// released fast events (about 1 KB each, one in five a stash reference)
// packed into as few NOTIFY payloads as fit, unsigned and signed.
func BenchmarkPackEnvelopes(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		for _, signed := range []bool{false, true} {
			b.Run(fmt.Sprintf("events=%d/signed=%t", n, signed), func(b *testing.B) {
				items := benchItems(n)
				var s *signer
				if signed {
					s = newSigner([]byte("bench-signing-key"))
				}
				b.ReportAllocs()
				for b.Loop() {
					out, err := packEnvelopes(items, s)
					if err != nil || len(out) == 0 {
						b.Fatalf("pack: %v", err)
					}
				}
				b.ReportMetric(float64(n), "events/op")
			})
		}
	}
}

// appendEnvelopes is a candidate replacement for packEnvelopes, kept here
// with its benchmark so the two can be compared: it assembles each payload
// by appending the already-encoded events instead of json.Marshal, which
// re-validates and re-compacts every json.RawMessage on every flush.
// TestAppendEnvelopesMatchesPack pins it to packEnvelopes' exact output.
func appendEnvelopes(items []fastItem, s *signer) []string {
	var out []string
	var events, refs []byte
	size := 0
	const overhead = 128
	flush := func() {
		if len(events) == 0 && len(refs) == 0 {
			return
		}
		env := []byte{'{'}
		if len(events) > 0 {
			env = append(append(append(env, `"events":[`...), events...), ']')
		}
		if len(refs) > 0 {
			if len(events) > 0 {
				env = append(env, ',')
			}
			env = append(append(append(env, `"refs":[`...), refs...), ']')
		}
		env = append(env, '}')
		w := []byte(`{"v":1,`)
		if s != nil {
			w = append(append(append(w, `"sig":"`...), s.sign(env)...), `",`...)
		}
		w = append(append(append(w, `"env":`...), env...), '}')
		out = append(out, string(w))
		events, refs, size = events[:0], refs[:0], 0
	}
	for _, it := range items {
		n := 39
		if it.inline != nil {
			n = len(it.inline) + 1
		}
		if size+n+overhead > MaxNotifyPayload {
			flush()
		}
		if it.inline != nil {
			if len(events) > 0 {
				events = append(events, ',')
			}
			events = append(events, it.inline...)
		} else {
			if len(refs) > 0 {
				refs = append(refs, ',')
			}
			refs = append(append(append(refs, '"'), it.id.String()...), '"')
		}
		size += n
	}
	flush()
	return out
}

func benchItems(n int) []fastItem {
	body := json.RawMessage(`{"event_name":"order.validated","payload":{"pad":"` + strings.Repeat("x", 1000) + `"}}`)
	items := make([]fastItem, n)
	for i := range items {
		items[i] = fastItem{id: uuid.New(), inline: body}
		if i%5 == 4 {
			items[i].inline = nil // a reference to a stashed event
		}
	}
	return items
}

func TestAppendEnvelopesMatchesPack(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 8, 64} {
		for _, s := range []*signer{nil, newSigner([]byte("k"))} {
			items := benchItems(n)
			want, err := packEnvelopes(items, s)
			if err != nil {
				t.Fatal(err)
			}
			got := appendEnvelopes(items, s)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("n=%d signed=%t:\n got %.300q\nwant %.300q", n, s != nil, got, want)
			}
		}
	}
}

// BenchmarkAppendEnvelopes is BenchmarkPackEnvelopes for appendEnvelopes.
func BenchmarkAppendEnvelopes(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		for _, signed := range []bool{false, true} {
			b.Run(fmt.Sprintf("events=%d/signed=%t", n, signed), func(b *testing.B) {
				items := benchItems(n)
				var s *signer
				if signed {
					s = newSigner([]byte("bench-signing-key"))
				}
				b.ReportAllocs()
				for b.Loop() {
					if out := appendEnvelopes(items, s); len(out) == 0 {
						b.Fatal("no payload")
					}
				}
				b.ReportMetric(float64(n), "events/op")
			})
		}
	}
}
