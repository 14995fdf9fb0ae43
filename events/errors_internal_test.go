package events

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// Missing objects map by what is missing: a namespace queue, stepevents'
// or pgmq's own objects, or something of the caller's (left alone).
func TestMapMissingObjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code, msg string
		want      error
	}{
		{"42P01", `relation "pgmq.q_orders_domain_events" does not exist`, ErrQueueMissing},
		{"42P01", `relation "stepevents.tasks" does not exist`, ErrNotMigrated},
		{"42P01", `relation "pgmq.meta" does not exist`, ErrNotMigrated},
		{"3F000", `schema "stepevents" does not exist`, ErrNotMigrated},
		{"3F000", `schema "pgmq" does not exist`, ErrNotMigrated},
		{"42883", `function stepevents.record_step_result(uuid, boolean) does not exist`, ErrNotMigrated},
		{"42883", `function pgmq.send_batch(text, jsonb[], jsonb[]) does not exist`, ErrNotMigrated},
		{"42P01", `relation "stepevents_audit" does not exist`, nil},
		{"42P01", `relation "orders" does not exist`, nil},
		{"42883", `function my_stepevents_hook() does not exist`, nil},
		{"42703", `column s.claim_id does not exist`, ErrNotMigrated},
	} {
		err := mapError(&pgconn.PgError{Code: tc.code, Message: tc.msg}, "doing")
		for _, s := range []error{ErrQueueMissing, ErrNotMigrated} {
			require.Equal(t, s == tc.want, errors.Is(err, s), "%s %q: %v", tc.code, tc.msg, err)
		}
	}
	err := mapError(&pgconn.PgError{Code: "42883", Message: `function pgmq.send_batch(text, jsonb[], jsonb[]) does not exist`}, "doing")
	require.ErrorContains(t, err, "pgmq 1.5 or later")
}
