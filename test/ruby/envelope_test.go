package ruby_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// envelopeCase is one NOTIFY payload for the decoder conformance test.
type envelopeCase struct {
	Name    string `json:"name"`
	Key     string `json:"key"`
	Payload string `json:"payload"`
}

// envelopeResult is how a decoder classified a payload.
type envelopeResult struct {
	Name   string `json:"name"`
	Result string `json:"result"` // ok, malformed, unsigned or forged
	Events int    `json:"events"`
	Refs   int    `json:"refs"`
}

// envelopeCases covers what the Ruby decoder must get right beyond the
// happy path: the signature over env's exact bytes, member order, duplicate
// members, JSON punctuation inside strings, and every malformed shape.
func envelopeCases(t *testing.T) []envelopeCase {
	t.Helper()
	const key = "conformance-key"
	ev := func(name string) string {
		raw, err := json.Marshal(events.Event{EventID: uuid.New(), EventName: name, EventVersion: events.EventVersion,
			Payload: events.EventPayload{Payload: json.RawMessage(`{"note":"}]{[\"\\ , : \u00e9"}`)}})
		require.NoError(t, err)
		return string(raw)
	}
	ref := `"` + uuid.NewString() + `"`
	env := `{"events":[` + ev("order.validated") + `,` + ev("payment.processed") + `],"refs":[` + ref + `]}`
	spaced := `{ "events" : [ ` + ev("order.validated") + ` ] , "refs" : [ ] }`
	sig := func(e string) string { return hmacHex(key, e) }
	refsOnly := `{"refs":[` + ref + `]}`
	return []envelopeCase{
		{"signed", key, `{"v":1,"sig":"` + sig(env) + `","env":` + env + `}`},
		{"unsigned, no key", "", `{"v":1,"env":` + env + `}`},
		{"signed, no key", "", `{"v":1,"sig":"` + sig(env) + `","env":` + env + `}`},
		{"whitespace everywhere", key, " {\n \"v\" : 1 ,\t\"sig\" : \"" + sig(spaced) + "\" ,\r\n \"env\" : " + spaced + " \n}\n "},
		{"env first", key, `{"env":` + env + `,"sig":"` + sig(env) + `","v":1}`},
		{"duplicate env, last wins", key, `{"v":1,"env":` + refsOnly + `,"sig":"` + sig(env) + `","env":` + env + `}`},
		{"duplicate env, signed first", key, `{"v":1,"env":` + refsOnly + `,"sig":"` + sig(refsOnly) + `","env":` + env + `}`},
		{"unknown member", key, `{"v":1,"x":{"y":["}"]},"sig":"` + sig(env) + `","env":` + env + `}`},
		{"refs only", key, `{"v":1,"sig":"` + sig(refsOnly) + `","env":` + refsOnly + `}`},
		{"unsigned", key, `{"v":1,"env":` + env + `}`},
		{"empty sig", key, `{"v":1,"sig":"","env":` + env + `}`},
		{"forged", key, `{"v":1,"sig":"` + hmacHex("other", env) + `","env":` + env + `}`},
		{"sig over a re-encoding", key, `{"v":1,"sig":"` + sig(strings.ReplaceAll(spaced, " ", "")) + `","env":` + spaced + `}`},
		{"upper-case sig", key, `{"v":1,"sig":"` + strings.ToUpper(sig(env)) + `","env":` + env + `}`},
		{"not json", "", `not json`},
		{"truncated", "", `{"v":1,"env":` + env},
		{"trailing data", "", `{"v":1,"env":` + env + `} x`},
		{"array", "", `[1]`},
		{"version 2", "", `{"v":2,"env":` + env + `}`},
		{"version string", "", `{"v":"1","env":` + env + `}`},
		{"version float", "", `{"v":1.5,"env":` + env + `}`},
		{"no version", "", `{"env":` + env + `}`},
		{"no env", "", `{"v":1}`},
		{"null env", "", `{"v":1,"env":null}`},
		{"env not an object", "", `{"v":1,"env":[1]}`},
		{"empty env", "", `{"v":1,"env":{}}`},
		{"empty lists", "", `{"v":1,"env":{"events":[],"refs":[]}}`},
		{"events not a list", "", `{"v":1,"env":{"events":{}}}`},
		{"ref not a uuid", "", `{"v":1,"env":{"refs":["nope"]}}`},
		{"ref not a string", "", `{"v":1,"env":{"refs":[1]}}`},
		{"sig not a string", key, `{"v":1,"sig":1,"env":` + env + `}`},
		{"invalid unknown member", "", `{"v":1,"x":tru,"env":` + env + `}`},
		{"trailing comma", "", `{"v":1,"env":` + env + `,}`},
		{"missing comma", "", `{"v":1 "env":` + env + `}`},
		{"deeply nested event", "", `{"v":1,"env":{"events":[` + strings.Repeat("[", 150) + strings.Repeat("]", 150) + `]}}`},
	}
}

func goDecode(c envelopeCase) envelopeResult {
	var key []byte
	if c.Key != "" {
		key = []byte(c.Key)
	}
	env, err := events.DecodeEnvelope([]byte(c.Payload), key)
	r := envelopeResult{Name: c.Name}
	switch {
	case err == nil:
		r.Result, r.Events, r.Refs = "ok", len(env.Events), len(env.Refs)
	case errors.Is(err, events.ErrUnsignedEnvelope):
		r.Result = "unsigned"
	case errors.Is(err, events.ErrForgedEnvelope):
		r.Result = "forged"
	case errors.Is(err, events.ErrMalformedEnvelope):
		r.Result = "malformed"
	default:
		r.Result = "unexpected error: " + err.Error()
	}
	return r
}

// TestEnvelopeDecodingAgreesWithGo decodes the same payloads with Go's
// events.DecodeEnvelope and the Ruby subscriber's Envelope.decode: both
// must accept, and refuse for the same reason, exactly the same ones.
func TestEnvelopeDecodingAgreesWithGo(t *testing.T) {
	t.Parallel()
	ruby := rubyBin(t)
	cases := envelopeCases(t)
	raw, err := json.Marshal(map[string]any{"cases": cases})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "envelopes.json")
	require.NoError(t, os.WriteFile(file, raw, 0o600))

	out, err := exec.Command(ruby, runScript, "--check-envelopes", file).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("run.rb --check-envelopes failed: %v\n%s", err, exitErr.Stderr)
	}
	require.NoError(t, err)
	var got struct {
		Results []envelopeResult `json:"results"`
	}
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	require.Len(t, got.Results, len(cases))

	results := map[string]int{}
	for i, c := range cases {
		want := goDecode(c)
		require.Equal(t, want, got.Results[i], "case %q: Ruby and Go disagree on %s", c.Name, c.Payload)
		results[want.Result]++
	}
	require.Equal(t, map[string]int{"ok": 9, "unsigned": 2, "forged": 4, "malformed": 20}, results,
		"the table covers every outcome")
}
