package events_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

func TestDecodeEnvelope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, payload string
		key           []byte
		err           error
	}{
		{"not json", `nope`, nil, events.ErrMalformedEnvelope},
		{"wrong version", `{"v":2,"env":{"events":[{}]}}`, nil, events.ErrMalformedEnvelope},
		{"no env", `{"v":1}`, nil, events.ErrMalformedEnvelope},
		{"empty env", `{"v":1,"env":{}}`, nil, events.ErrMalformedEnvelope},
		{"refs not uuids", `{"v":1,"env":{"refs":["x"]}}`, nil, events.ErrMalformedEnvelope},
		{"unsigned with key", `{"v":1,"env":{"events":[{}]}}`, []byte("k"), events.ErrUnsignedEnvelope},
		{"forged with key", `{"v":1,"sig":"00","env":{"events":[{}]}}`, []byte("k"), events.ErrForgedEnvelope},
		{"inline ok", `{"v":1,"env":{"events":[{"event_name":"a.b"}]}}`, nil, nil},
		{"refs ok", `{"v":1,"env":{"refs":["0192f0c1-0000-7000-8000-000000000000"]}}`, nil, nil},
	}
	for _, c := range cases {
		_, err := events.DecodeEnvelope([]byte(c.payload), c.key)
		if c.err == nil {
			require.NoError(t, err, c.name)
		} else {
			require.ErrorIs(t, err, c.err, c.name)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"v":1,"env":{"events":[{"event_name":"a.b"}]}}`), []byte(nil))
	f.Add([]byte(`{"v":1,"sig":"ab","env":{"refs":["0192f0c1-0000-7000-8000-000000000000"]}}`), []byte("key"))
	f.Add([]byte(`{"v":1,"env":null}`), []byte(nil))
	f.Fuzz(func(t *testing.T, payload, key []byte) {
		env, err := events.DecodeEnvelope(payload, key)
		if err != nil {
			return
		}
		require.True(t, len(env.Events) > 0 || len(env.Refs) > 0, "a decoded envelope is never empty")
		for _, e := range env.Events {
			require.True(t, json.Valid(e))
		}
	})
}
