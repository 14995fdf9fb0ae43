package events

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/google/uuid"

	"github.com/stepevents/stepevents/internal/jsonscan"
)

// MaxNotifyPayload is the largest NOTIFY payload stepevents sends, well
// under PostgreSQL's limit of 7999 bytes.
const MaxNotifyPayload = 7000

// maxInlineEvent is the largest event carried inline in an envelope; larger
// ones travel as a reference to stepevents.fast_event_stash.
const maxInlineEvent = MaxNotifyPayload - 256

// envelopeVersion is the wire version of fast envelopes.
const envelopeVersion = 1

// Envelope is what one NOTIFY carries: events inline and references to
// stashed (oversized) events.
type Envelope struct {
	Events []json.RawMessage `json:"events,omitempty"`
	Refs   []uuid.UUID       `json:"refs,omitempty"`
}

// wire is the NOTIFY payload: the envelope, and its HMAC when signing.
type wire struct {
	V   int             `json:"v"`
	Sig string          `json:"sig,omitempty"`
	Env json.RawMessage `json:"env"`
}

// Envelope decoding errors.
var (
	ErrMalformedEnvelope = errors.New("malformed fast envelope")
	ErrUnsignedEnvelope  = errors.New("unsigned fast envelope")
	ErrForgedEnvelope    = errors.New("fast envelope signature mismatch")
)

// signer signs and verifies envelopes with a shared HMAC-SHA256 key.
type signer struct{ key []byte }

func newSigner(key []byte) *signer { return &signer{key: bytes.Clone(key)} }

func (s *signer) sign(env []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write(env)
	return hex.EncodeToString(m.Sum(nil))
}

// encodeWire wraps an encoded envelope for NOTIFY.
func encodeWire(env []byte, s *signer) (string, error) {
	w := wire{V: envelopeVersion, Env: env}
	if s != nil {
		w.Sig = s.sign(env)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("error encoding fast envelope: %w", err)
	}
	return string(b), nil
}

// DecodeEnvelope checks a NOTIFY payload's shape (and signature when key is
// set) and returns the envelope. Nothing else about the events is trusted or
// checked here. It validates the payload once, then splits it in one pass
// (json.Unmarshal of the wire, then of the envelope, walked every event four
// times; BenchmarkDecodeEnvelope); the events it returns are valid JSON, so
// DecodeStoredEvent may decode them.
func DecodeEnvelope(payload []byte, key []byte) (Envelope, error) {
	if !json.Valid(payload) {
		var v any
		err := json.Unmarshal(payload, &v) // for its message: what is wrong, and where
		return Envelope{}, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
	}
	var w wire
	err := jsonscan.ObjectFields(payload, func(k, v []byte) error {
		switch {
		case jsonscan.KeyIs(k, "v"):
			return jsonscan.Int(v, &w.V)
		case jsonscan.KeyIs(k, "sig"):
			return jsonscan.String(v, &w.Sig)
		case jsonscan.KeyIs(k, "env"):
			w.Env = v
		}
		return nil
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
	}
	if w.V != envelopeVersion || len(w.Env) == 0 {
		return Envelope{}, fmt.Errorf("%w: version %d", ErrMalformedEnvelope, w.V)
	}
	if len(key) > 0 {
		if w.Sig == "" {
			return Envelope{}, ErrUnsignedEnvelope
		}
		want := newSigner(key).sign(w.Env)
		if !hmac.Equal([]byte(want), []byte(w.Sig)) {
			return Envelope{}, ErrForgedEnvelope
		}
	}
	var env Envelope
	body := bytes.Clone(w.Env) // the events must not alias the caller's payload
	err = jsonscan.ObjectFields(body, func(k, v []byte) error {
		switch {
		case jsonscan.KeyIs(k, "events"):
			env.Events = nil
			return jsonscan.ArrayElements(v, func(e []byte) error {
				env.Events = append(env.Events, e)
				return nil
			})
		case jsonscan.KeyIs(k, "refs"):
			env.Refs = nil
			return json.Unmarshal(v, &env.Refs)
		}
		return nil
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
	}
	if len(env.Events) == 0 && len(env.Refs) == 0 {
		return Envelope{}, fmt.Errorf("%w: empty", ErrMalformedEnvelope)
	}
	return env, nil
}

// fastItem is one fast copy waiting to be notified: inline JSON or a reference.
type fastItem struct {
	id     uuid.UUID
	inline json.RawMessage // nil for a reference
}

// packEnvelopes packs items into as few NOTIFY payloads as fit
// MaxNotifyPayload. It appends the already-encoded events rather than
// json.Marshal-ing an Envelope, which would re-validate and re-compact every
// event on every flush (10-19x the CPU; BenchmarkPackEnvelopes). The inline
// events come from appendEvent (the bytes json.Marshal gives), so they are
// valid and compact already.
func packEnvelopes(items []fastItem, s *signer) ([]string, error) {
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
	return out, nil
}

var channelRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidChannel reports whether ch can be a stepevents NOTIFY channel: a
// plain lower-case identifier, so it never needs quoting. Callers that take
// a channel from users (the CLI) check it before connecting.
func ValidChannel(ch string) error { return validChannel(ch) }

func validChannel(ch string) error {
	if !channelRE.MatchString(ch) {
		return fmt.Errorf("channel %q must match %s: %w", ch, channelRE, ErrInvalidInput)
	}
	return nil
}
