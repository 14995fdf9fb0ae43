package template_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

// BenchmarkValidatePayload is the schema check every emitted event pays
// inside the step transaction (payment.processed of the seed fixture), for a
// valid payload given as raw JSON (what the router passes) and as a map
// (what a custom publisher typically returns).
func BenchmarkValidatePayload(b *testing.B) {
	tpl, err := template.LoadFile(goodFixture)
	require.NoError(b, err)
	step, ok := tpl.Step("domain_events_process_payment")
	require.True(b, ok)
	decl, ok := step.Event("payment.processed")
	require.True(b, ok)
	raw := json.RawMessage(`{"order_id":"0192f0c4-1b2c-7d3e-8f40-123456789abc","transaction_id":"txn_1",` +
		`"amount":42.5,"currency":"USD","customer_tier":"standard","attempt":1}`)
	asMap := map[string]any{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "transaction_id": "txn_1",
		"amount": 42.5, "currency": "USD", "customer_tier": "standard", "attempt": 1}
	for _, c := range []struct {
		name string
		v    any
	}{{"raw", raw}, {"map", asMap}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v := decl.CompiledSchema.Validate(c.v); len(v) > 0 {
					b.Fatalf("violations: %v", v)
				}
			}
		})
	}
}

// BenchmarkDecodeInstance is the decoding of a raw payload for validation,
// which Validate did with jsonschema.UnmarshalJSON and now does in one pass
// (DecodeInstance), with the same result.
func BenchmarkDecodeInstance(b *testing.B) {
	raw := []byte(`{"order_id": "0192f0c4-1b2c-7d3e-8f40-123456789abc", "transaction_id": "txn_1", ` +
		`"amount": 42.5, "currency": "USD", "customer_tier": "standard", "attempt": 1}`)
	b.Run("jsonschema.UnmarshalJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeInstance", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			template.DecodeInstance(raw)
		}
	})
}
