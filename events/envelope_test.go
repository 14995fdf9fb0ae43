package events_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
		if ascii(payload) {
			want, werr := decodeEnvelopeReference(payload, key)
			require.Equal(t, werr == nil, err == nil, "reference err=%v, DecodeEnvelope err=%v", werr, err)
			if err == nil {
				require.Equal(t, want, env)
			}
		}
		if err != nil {
			return
		}
		require.True(t, len(env.Events) > 0 || len(env.Refs) > 0, "a decoded envelope is never empty")
		for _, e := range env.Events {
			require.True(t, json.Valid(e))
		}
	})
}

// decodeEnvelopeReference is DecodeEnvelope as first written, with
// json.Unmarshal: the one-pass decoder must agree with it.
func decodeEnvelopeReference(payload, key []byte) (events.Envelope, error) {
	var w struct {
		V   int             `json:"v"`
		Sig string          `json:"sig,omitempty"`
		Env json.RawMessage `json:"env"`
	}
	if err := json.Unmarshal(payload, &w); err != nil {
		return events.Envelope{}, err
	}
	if w.V != 1 || len(w.Env) == 0 {
		return events.Envelope{}, errors.New("version")
	}
	if len(key) > 0 {
		if w.Sig == "" {
			return events.Envelope{}, errors.New("unsigned")
		}
		m := hmac.New(sha256.New, key)
		m.Write(w.Env)
		if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(w.Sig)) {
			return events.Envelope{}, errors.New("forged")
		}
	}
	var env events.Envelope
	if err := json.Unmarshal(w.Env, &env); err != nil {
		return events.Envelope{}, err
	}
	if len(env.Events) == 0 && len(env.Refs) == 0 {
		return events.Envelope{}, errors.New("empty")
	}
	return env, nil
}
