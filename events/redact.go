package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// redact removes each JSON pointer from doc (missing paths are ignored), so
// fields declared in durable_redact never reach the public queue.
func redact(doc json.RawMessage, pointers []string) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("error decoding payload: %w", err)
	}
	for _, p := range pointers {
		v = removePointer(v, splitPointer(p))
	}
	return json.Marshal(v)
}

func splitPointer(p string) []string {
	if p == "" || p == "/" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

func removePointer(v any, path []string) any {
	if len(path) == 0 {
		return v
	}
	switch n := v.(type) {
	case map[string]any:
		if len(path) == 1 {
			delete(n, path[0])
			return n
		}
		if child, ok := n[path[0]]; ok {
			n[path[0]] = removePointer(child, path[1:])
		}
	case []any:
		i, err := strconv.Atoi(path[0])
		if err != nil || i < 0 || i >= len(n) {
			return n
		}
		if len(path) == 1 {
			return append(n[:i], n[i+1:]...)
		}
		n[i] = removePointer(n[i], path[1:])
	}
	return v
}

// redactEvent removes the pointers from the business payload, from the
// result in execution_result and from workflow_step.results in the step
// context: every place the durable copy would otherwise carry them.
func redactEvent(ev *Event, pointers []string) error {
	var err error
	if ev.Payload.Payload, err = redact(ev.Payload.Payload, pointers); err != nil {
		return err
	}
	if len(ev.Payload.ExecutionResult.Result) > 0 {
		if ev.Payload.ExecutionResult.Result, err = redact(ev.Payload.ExecutionResult.Result, pointers); err != nil {
			return err
		}
	}
	if len(ev.Payload.TaskSequenceStep) > 0 {
		prefixed := make([]string, len(pointers))
		for i, p := range pointers {
			prefixed[i] = "/workflow_step/results" + p
		}
		if ev.Payload.TaskSequenceStep, err = redact(ev.Payload.TaskSequenceStep, prefixed); err != nil {
			return err
		}
	}
	return nil
}
