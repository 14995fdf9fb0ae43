package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// redact removes each JSON pointer from doc (missing paths are ignored), so
// fields declared in durable_redact never reach the public queue. Numbers
// are kept as their literals (json.Number): a float64 round trip would
// change large integers and long decimals in the durable copy.
func redact(doc json.RawMessage, pointers []string) (json.RawMessage, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("error decoding payload: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("error decoding payload: data after its JSON value")
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

// durableRedactions lists the pointers to remove from a durable copy's step
// context: this step's result (with the union of the step's durable_redact
// pointers: a sibling declaration without redaction must not leak what
// another one hides) and each parent's result in dependency_results (with
// the union of that parent's pointers). The result also travels in
// execution_result and the step context, so redacting only the business
// payload would leak it anyway.
func durableRedactions(sc *StepContext, decls *templateDecls) []string {
	var out []string
	for _, p := range decls.stepRedact[sc.StepName] {
		out = append(out, "/workflow_step/results"+p)
	}
	for parent := range sc.DependencyResults {
		for _, p := range decls.stepRedact[parent] {
			out = append(out, "/dependency_results/"+escapePointerToken(parent)+p)
		}
	}
	return out
}

func escapePointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// redactEvent removes payload pointers from the business payload, result
// pointers from the execution result, and sequence pointers (into
// task_sequence_step) from the step context.
func redactEvent(ev *Event, payload, result, sequence []string) error {
	var err error
	if len(payload) > 0 {
		if ev.Payload.Payload, err = redact(ev.Payload.Payload, payload); err != nil {
			return err
		}
	}
	if len(result) > 0 && len(ev.Payload.ExecutionResult.Result) > 0 {
		if ev.Payload.ExecutionResult.Result, err = redact(ev.Payload.ExecutionResult.Result, result); err != nil {
			return err
		}
	}
	if len(sequence) > 0 && len(ev.Payload.TaskSequenceStep) > 0 {
		if ev.Payload.TaskSequenceStep, err = redact(ev.Payload.TaskSequenceStep, sequence); err != nil {
			return err
		}
	}
	return nil
}
