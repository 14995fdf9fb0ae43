package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/stepevents/stepevents/internal/jsonscan"
)

// recorded is the document stepevents.record_step_result returns.
type recorded struct {
	StepRow     stepRowJSON `json:"step"`
	Succeeded   bool        `json:"succeeded"`
	IsRetryable *bool       `json:"is_retryable"`
	TemplateID  int64       `json:"template_id"`
	// Sequence is the task_sequence_step document events embed as is.
	Sequence     json.RawMessage   `json:"task_sequence_step"`
	Declarations []declarationJSON `json:"declarations"`
}

// declarationJSON is one declaration of the completed step, with whether it
// fires (decided in SQL).
type declarationJSON struct {
	EventName    string  `json:"event_name"`
	Condition    string  `json:"condition"`
	DeliveryMode string  `json:"delivery_mode"`
	Publisher    *string `json:"publisher"`
	Fires        bool    `json:"fires"`
}

// sequenceFields are the parts of task_sequence_step publishers see as fields.
type sequenceFields struct {
	Task struct {
		Namespace     string          `json:"namespace"`
		Context       json.RawMessage `json:"context"`
		CorrelationID uuid.UUID       `json:"correlation_id"`
	} `json:"task"`
	DependencyResults map[string]json.RawMessage `json:"dependency_results"`
}

// decodeRecorded decodes record_step_result's jsonb (valid JSON by
// construction) in one pass: the step context, the largest part, is
// sliced out as it is and read for its few fields, instead of
// json.Unmarshal validating and walking it three times on every
// completion. The raw parts share raw's memory.
func decodeRecorded(raw []byte) (rec recorded, seq sequenceFields, err error) {
	err = jsonscan.ObjectFields(raw, func(k, v []byte) error {
		switch {
		case jsonscan.KeyIs(k, "step"):
			return decodeStepRow(v, &rec.StepRow)
		case jsonscan.KeyIs(k, "succeeded"):
			return jsonscan.Bool(v, &rec.Succeeded)
		case jsonscan.KeyIs(k, "is_retryable"):
			return decodeBoolPtr(v, &rec.IsRetryable)
		case jsonscan.KeyIs(k, "template_id"):
			id, err := strconv.ParseInt(string(v), 10, 64)
			rec.TemplateID = id
			return err
		case jsonscan.KeyIs(k, "task_sequence_step"):
			rec.Sequence = v
			return decodeSequence(v, &seq)
		case jsonscan.KeyIs(k, "declarations"):
			return decodeDeclarations(v, &rec.Declarations)
		}
		return nil
	})
	return rec, seq, err
}

func decodeSequence(b []byte, seq *sequenceFields) error {
	return jsonscan.ObjectFields(b, func(k, v []byte) error {
		switch {
		case jsonscan.KeyIs(k, "task"):
			return jsonscan.ObjectFields(v, func(k, v []byte) error {
				switch {
				case jsonscan.KeyIs(k, "namespace"):
					return jsonscan.String(v, &seq.Task.Namespace)
				case jsonscan.KeyIs(k, "context"):
					seq.Task.Context = v
				case jsonscan.KeyIs(k, "correlation_id"):
					return decodeUUID(v, &seq.Task.CorrelationID)
				}
				return nil
			})
		case jsonscan.KeyIs(k, "dependency_results"):
			seq.DependencyResults = map[string]json.RawMessage{}
			return jsonscan.ObjectFields(v, func(k, v []byte) error {
				seq.DependencyResults[string(k)] = v
				return nil
			})
		}
		return nil
	})
}

// decodeStepRow decodes the step row (to_jsonb of workflow_steps) as
// json.Unmarshal would, without reflection: it was most of the decoding
// time of every completion. Columns the row has and Step does not are
// skipped; null leaves a value field as it is and a pointer nil.
func decodeStepRow(b []byte, r *stepRowJSON) error {
	return jsonscan.ObjectFields(b, func(k, v []byte) error {
		switch {
		case jsonscan.KeyIs(k, "step_uuid"):
			return decodeUUID(v, &r.StepUUID)
		case jsonscan.KeyIs(k, "task_uuid"):
			return decodeUUID(v, &r.TaskUUID)
		case jsonscan.KeyIs(k, "name"):
			return jsonscan.String(v, &r.Name)
		case jsonscan.KeyIs(k, "handler"):
			return jsonscan.String(v, &r.Handler)
		case jsonscan.KeyIs(k, "state"):
			return jsonscan.String(v, &r.State)
		case jsonscan.KeyIs(k, "backoff"):
			return jsonscan.String(v, &r.Backoff)
		case jsonscan.KeyIs(k, "retryable"):
			return jsonscan.Bool(v, &r.Retryable)
		case jsonscan.KeyIs(k, "max_attempts"):
			return jsonscan.Int(v, &r.MaxAttempts)
		case jsonscan.KeyIs(k, "attempts"):
			return jsonscan.Int(v, &r.Attempts)
		case jsonscan.KeyIs(k, "backoff_base_ms"):
			return jsonscan.Int(v, &r.BackoffBaseMS)
		case jsonscan.KeyIs(k, "max_backoff_ms"):
			return jsonscan.Int(v, &r.MaxBackoffMS)
		case jsonscan.KeyIs(k, "timeout_seconds"):
			return jsonscan.Int(v, &r.TimeoutSeconds)
		case jsonscan.KeyIs(k, "last_attempted_at"):
			return decodeTime(v, &r.LastAttemptedAt)
		case jsonscan.KeyIs(k, "last_failure_at"):
			return decodeTime(v, &r.LastFailureAt)
		case jsonscan.KeyIs(k, "next_retry_at"):
			return decodeTime(v, &r.NextRetryAt)
		case jsonscan.KeyIs(k, "backoff_request_seconds"):
			if jsonscan.IsNull(v) {
				r.BackoffRequestSeconds = nil
				return nil
			}
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return fmt.Errorf("%w: %q is not a number", jsonscan.ErrMalformed, v)
			}
			r.BackoffRequestSeconds = &f
		case jsonscan.KeyIs(k, "claim_id"):
			if jsonscan.IsNull(v) {
				return nil
			}
			id, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %q is not an integer", jsonscan.ErrMalformed, v)
			}
			r.ClaimID = id
		case jsonscan.KeyIs(k, "results"):
			r.Results = v
		case jsonscan.KeyIs(k, "last_error"):
			r.LastError = v
		}
		return nil
	})
}

// decodeDeclarations decodes the declarations array as json.Unmarshal
// would: null leaves it nil, an element null leaves its zero value.
func decodeDeclarations(b []byte, out *[]declarationJSON) error {
	if jsonscan.IsNull(b) {
		*out = nil
		return nil
	}
	ds := []declarationJSON{}
	err := jsonscan.ArrayElements(b, func(e []byte) error {
		var d declarationJSON
		err := jsonscan.ObjectFields(e, func(k, v []byte) error {
			switch {
			case jsonscan.KeyIs(k, "event_name"):
				return jsonscan.String(v, &d.EventName)
			case jsonscan.KeyIs(k, "condition"):
				return jsonscan.String(v, &d.Condition)
			case jsonscan.KeyIs(k, "delivery_mode"):
				return jsonscan.String(v, &d.DeliveryMode)
			case jsonscan.KeyIs(k, "publisher"):
				if jsonscan.IsNull(v) {
					d.Publisher = nil
					return nil
				}
				var p string
				if err := jsonscan.String(v, &p); err != nil {
					return err
				}
				d.Publisher = &p
			case jsonscan.KeyIs(k, "fires"):
				return jsonscan.Bool(v, &d.Fires)
			}
			return nil
		})
		ds = append(ds, d)
		return err
	})
	*out = ds
	return err
}

func decodeBoolPtr(b []byte, v **bool) error {
	if jsonscan.IsNull(b) {
		*v = nil
		return nil
	}
	x := new(bool)
	if err := jsonscan.Bool(b, x); err != nil {
		return err
	}
	*v = x
	return nil
}

// decodeTime parses a timestamptz as jsonb prints it (RFC 3339), as
// time.Time's UnmarshalJSON does.
func decodeTime(b []byte, t **time.Time) error {
	if jsonscan.IsNull(b) {
		*t = nil
		return nil
	}
	v := new(time.Time)
	if err := v.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("%w: %w", jsonscan.ErrMalformed, err)
	}
	*t = v
	return nil
}
