package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/examples/publishers"
)

func (a *app) stepCmd() *cobra.Command {
	cmd := group("step", "Start, complete, fail, resolve or reset a step")

	// withStep parses STEP_UUID and connects before calling fn.
	withStep := func(fn func(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) error) func(*cobra.Command, []string) error {
		return runE(func(cmd *cobra.Command, args []string) error {
			id, err := parseUUID("step", args[0])
			if err != nil {
				return err
			}
			pool, err := a.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := fn(cmd.Context(), pool, id); err != nil {
				return explain("step "+id.String(), err)
			}
			return nil
		})
	}
	// withClient adds an events.Client with the example publishers.
	withClient := func(fn func(ctx context.Context, c *events.Client, id uuid.UUID) (*events.Completion, error)) func(*cobra.Command, []string) error {
		return withStep(func(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) error {
			c, err := events.NewClient(ctx, pool, &events.Config{Publishers: publishers.All()})
			if err != nil {
				return err
			}
			comp, err := fn(ctx, c, id)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectTimeout)
			defer cancel()
			if cerr := c.Close(cctx); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			return a.printCompletion(comp)
		})
	}

	start := a.withJSON(&cobra.Command{
		Use:   "start STEP_UUID",
		Short: "Claim a ready step (counts an attempt)",
		Args:  cobra.ExactArgs(1),
		RunE: withStep(func(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) error {
			s, err := events.StartStep(ctx, pool, id)
			if err != nil {
				return err
			}
			return a.printStep(s)
		}),
	})

	var result string
	complete := a.withJSON(&cobra.Command{
		Use:   "complete STEP_UUID --result JSON",
		Short: "Record a step's result and publish its events",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			_, err := parseJSONFlag("result", result)
			return err
		},
		RunE: withClient(func(ctx context.Context, c *events.Client, id uuid.UUID) (*events.Completion, error) {
			return c.CompleteStep(ctx, id, []byte(result))
		}),
	})
	complete.Flags().StringVar(&result, "result", "{}", "step result (JSON)")

	var f events.Failure
	var retryAfter string
	fail := a.withJSON(&cobra.Command{
		Use:   "fail STEP_UUID --error MSG",
		Short: "Record a step failure and publish its events",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if f.Message == "" {
				return fmt.Errorf("--error is required: say what went wrong")
			}
			if retryAfter != "" {
				d, err := time.ParseDuration(retryAfter)
				if err != nil || d <= 0 {
					return fmt.Errorf("invalid --retry-after %q: give a positive duration like 30s", retryAfter)
				}
				f.RetryAfter = d
			}
			return nil
		},
		RunE: withClient(func(ctx context.Context, c *events.Client, id uuid.UUID) (*events.Completion, error) {
			return c.FailStep(ctx, id, f)
		}),
	})
	fail.Flags().StringVar(&f.Message, "error", "", "error message (required)")
	fail.Flags().StringVar(&f.Code, "code", "", "error code")
	fail.Flags().StringVar(&f.Type, "type", "", "error type")
	fail.Flags().BoolVar(&f.Permanent, "permanent", false, "forbid a retry whatever attempts remain")
	fail.Flags().StringVar(&retryAfter, "retry-after", "",
		"retry after this duration instead of the step's backoff, capped at the step's max_backoff_ms "+
			"(its template's retry setting); unused when the failure is not retried")

	var note string
	resolve := a.withJSON(&cobra.Command{
		Use:   "resolve STEP_UUID",
		Short: "Mark a step resolved_manually (satisfies its dependents)",
		Args:  cobra.ExactArgs(1),
		RunE: withStep(func(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) error {
			s, err := events.ResolveStep(ctx, pool, id, note)
			if err != nil {
				return err
			}
			return a.printStep(s)
		}),
	})
	resolve.Flags().StringVar(&note, "note", "", "why (recorded in the step history)")
	reset := a.withJSON(&cobra.Command{
		Use:   "reset STEP_UUID",
		Short: "Give a failed step fresh attempts (back to pending)",
		Args:  cobra.ExactArgs(1),
		RunE: withStep(func(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) error {
			s, err := events.ResetStep(ctx, pool, id, note)
			if err != nil {
				return err
			}
			return a.printStep(s)
		}),
	})
	reset.Flags().StringVar(&note, "note", "", "why (recorded in the step history)")

	cmd.AddCommand(start, complete, fail, resolve, reset)
	return cmd
}

// printStep prints a step's state after an operation.
func (a *app) printStep(s events.Step) error {
	if a.json {
		return a.printJSON(stepJSON{StepUUID: s.StepUUID.String(), Name: s.Name, State: s.State,
			Attempts: s.Attempts, MaxAttempts: s.MaxAttempts, NextRetryAt: s.NextRetryAt})
	}
	fmt.Fprintf(a.stdout, "step %s (%s): %s, attempts %d/%d\n", s.StepUUID, s.Name, s.State, s.Attempts, s.MaxAttempts)
	return nil
}
