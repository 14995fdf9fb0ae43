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

// marshalEnvelopes is the straightforward json.Marshal encoding that
// packEnvelopes must reproduce byte for byte.
func marshalEnvelopes(items []fastItem, s *signer) ([]string, error) {
	var out []string
	var cur Envelope
	size := 0
	const overhead = 128 // {"v":1,"sig":"<64 hex>","env":{"events":[],"refs":[]}}
	flush := func() error {
		if len(cur.Events) == 0 && len(cur.Refs) == 0 {
			return nil
		}
		env, err := json.Marshal(cur)
		if err != nil {
			return fmt.Errorf("error encoding fast envelope: %w", err)
		}
		w, err := encodeWire(env, s)
		if err != nil {
			return err
		}
		out = append(out, w)
		cur, size = Envelope{}, 0
		return nil
	}
	for _, it := range items {
		n := 39 // a quoted uuid and a comma
		if it.inline != nil {
			n = len(it.inline) + 1
		}
		if size+n+overhead > MaxNotifyPayload {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if it.inline != nil {
			cur.Events = append(cur.Events, it.inline)
		} else {
			cur.Refs = append(cur.Refs, it.id)
		}
		size += n
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
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

func TestPackEnvelopesMatchesMarshal(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 8, 64} {
		for _, s := range []*signer{nil, newSigner([]byte("k"))} {
			items := benchItems(n)
			want, err := marshalEnvelopes(items, s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := packEnvelopes(items, s)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("n=%d signed=%t:\n got %.300q\nwant %.300q", n, s != nil, got, want)
			}
		}
	}
}

// BenchmarkMarshalEnvelopes is BenchmarkPackEnvelopes for the json.Marshal
// encoding packEnvelopes replaced, for comparison.
func BenchmarkMarshalEnvelopes(b *testing.B) {
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
					if out, _ := marshalEnvelopes(items, s); len(out) == 0 {
						b.Fatal("no payload")
					}
				}
				b.ReportMetric(float64(n), "events/op")
			})
		}
	}
}
