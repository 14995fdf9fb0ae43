package events

import (
	"encoding/json"
	"strconv"

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
	Sequence     json.RawMessage `json:"task_sequence_step"`
	Declarations []struct {
		EventName    string  `json:"event_name"`
		Condition    string  `json:"condition"`
		DeliveryMode string  `json:"delivery_mode"`
		Publisher    *string `json:"publisher"`
		Fires        bool    `json:"fires"`
	} `json:"declarations"`
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
			return json.Unmarshal(v, &rec.StepRow)
		case jsonscan.KeyIs(k, "succeeded"):
			return json.Unmarshal(v, &rec.Succeeded)
		case jsonscan.KeyIs(k, "is_retryable"):
			return json.Unmarshal(v, &rec.IsRetryable)
		case jsonscan.KeyIs(k, "template_id"):
			id, err := strconv.ParseInt(string(v), 10, 64)
			rec.TemplateID = id
			return err
		case jsonscan.KeyIs(k, "task_sequence_step"):
			rec.Sequence = v
			return decodeSequence(v, &seq)
		case jsonscan.KeyIs(k, "declarations"):
			return json.Unmarshal(v, &rec.Declarations)
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
