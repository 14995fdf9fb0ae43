package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkPackEnvelopes is the notifier's encoding cost per flush: n
// released fast events (about 1 KB each) packed into as few NOTIFY payloads
// as fit, unsigned and signed.
func BenchmarkPackEnvelopes(b *testing.B) {
	body := json.RawMessage(`{"event_name":"order.validated","payload":{"pad":"` + strings.Repeat("x", 1000) + `"}}`)
	for _, n := range []int{1, 8, 64} {
		for _, signed := range []bool{false, true} {
			b.Run(fmt.Sprintf("events=%d/signed=%t", n, signed), func(b *testing.B) {
				items := make([]fastItem, n)
				for i := range items {
					items[i] = fastItem{id: uuid.New(), inline: body}
				}
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
