package fault_test

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

// invariantsSQL lists the invariants of a stepevents database as plain SQL
// queries that return violations.
//
//go:embed invariants.sql
var invariantsSQL string

// invariant is one query of invariants.sql: name is its "-- invariant:" line.
type invariant struct{ name, sql string }

// invariants splits invariants.sql at its "-- invariant:" lines.
func invariants(t *testing.T) []invariant {
	t.Helper()
	const marker = "-- invariant: "
	parts := strings.Split(invariantsSQL, "\n"+marker)
	require.Greater(t, len(parts), 1, "invariants.sql has no %q lines", marker)
	out := make([]invariant, 0, len(parts)-1)
	for _, p := range parts[1:] {
		name, sql, _ := strings.Cut(p, "\n")
		out = append(out, invariant{name: strings.TrimSpace(name), sql: sql})
	}
	return out
}

// requireInvariants runs every invariant on dbtx and fails t with the
// violations of each one that has any.
func requireInvariants(t *testing.T, ctx context.Context, dbtx events.Executor) {
	t.Helper()
	failed := false
	for _, inv := range invariants(t) {
		if rows := queryViolations(t, ctx, dbtx, inv.sql); len(rows) > 0 {
			failed = true
			t.Errorf("invariant violated: %s: %d rows, the first ones:\n  %s", inv.name, len(rows),
				strings.Join(rows[:min(len(rows), 10)], "\n  "))
		}
	}
	if failed {
		t.FailNow()
	}
}

// queryViolations runs a query that lists violations and returns each row
// as text.
func queryViolations(t *testing.T, ctx context.Context, dbtx events.Executor, sql string) []string {
	t.Helper()
	rows, err := dbtx.Query(ctx, sql)
	require.NoError(t, err, "query:\n%s", sql)
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		cols := make([]string, len(vals))
		for i, v := range vals {
			cols[i] = formatValue(v)
		}
		out = append(out, strings.Join(cols, " | "))
	}
	require.NoError(t, rows.Err(), "query:\n%s", sql)
	return out
}

// formatValue prints a column of a violation: uuids as text, documents as JSON.
func formatValue(v any) string {
	switch v := v.(type) {
	case [16]byte:
		return uuid.UUID(v).String()
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}
