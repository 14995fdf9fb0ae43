package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

func (a *app) taskCmd() *cobra.Command {
	cmd := group("task", "Create and inspect tasks")
	var ctxJSON string
	create := &cobra.Command{
		Use:   "create NAMESPACE/NAME[@VERSION|@latest]",
		Short: "Create a task from a stored template (by default its newest version) and print its uuid",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			_, err := parseJSONObjectFlag("context", ctxJSON)
			return err
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			p, err := parseTemplateRef(args[0])
			if err != nil {
				return err
			}
			p.Context = json.RawMessage(ctxJSON)
			pool, err := a.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			id, err := events.CreateTask(cmd.Context(), pool, p)
			if err != nil {
				return explain("template "+p.Namespace+"/"+p.Name+versionSuffix(p.Version), err)
			}
			fmt.Fprintln(a.stdout, id)
			return nil
		}),
	}
	create.Flags().StringVar(&ctxJSON, "context", "{}", "task context (JSON object)")
	show := a.withJSON(&cobra.Command{
		Use:   "show TASK_UUID",
		Short: "Show a task and its steps with their readiness",
		Args:  cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id, err := parseUUID("task", args[0])
			if err != nil {
				return err
			}
			pool, err := a.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			ctx := cmd.Context()
			task, err := events.GetTask(ctx, pool, id)
			if err != nil {
				return explain("task "+id.String(), err)
			}
			steps, err := events.TaskSteps(ctx, pool, id)
			if err != nil {
				return explain("task "+id.String(), err)
			}
			ready, err := events.Readiness(ctx, pool, id)
			if err != nil {
				return explain("task "+id.String(), err)
			}
			byStep := map[string]events.StepReadiness{}
			for _, r := range ready {
				byStep[r.StepUUID.String()] = r
			}
			out := taskJSON{TaskUUID: task.TaskUUID.String(), Template: fmt.Sprintf("%s/%s@%s", task.Namespace,
				task.TemplateName, task.TemplateVersion), State: task.State, Context: task.Context,
				CreatedAt: task.CreatedAt, CompletedAt: task.CompletedAt, Steps: []stepJSON{}}
			for _, s := range steps {
				r := byStep[s.StepUUID.String()]
				out.Steps = append(out.Steps, stepJSON{StepUUID: s.StepUUID.String(), Name: s.Name, State: s.State,
					Attempts: s.Attempts, MaxAttempts: s.MaxAttempts, Ready: &r.ReadyForExecution,
					NextRetryAt: r.NextRetryAt})
			}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "task %s (%s): %s\n", out.TaskUUID, out.Template, out.State)
			w := a.table()
			fmt.Fprintln(w, "STEP_UUID\tNAME\tSTATE\tATTEMPTS\tREADY\tNEXT_RETRY_AT")
			for _, s := range out.Steps {
				next := "-"
				if s.NextRetryAt != nil {
					next = s.NextRetryAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%t\t%s\n", s.StepUUID, s.Name, s.State, s.Attempts, s.MaxAttempts,
					*s.Ready, next)
			}
			return w.Flush()
		}),
	})
	cmd.AddCommand(create, show)
	return cmd
}

type taskJSON struct {
	TaskUUID    string          `json:"task_uuid"`
	Template    string          `json:"template"`
	State       string          `json:"state"`
	Context     json.RawMessage `json:"context"`
	CreatedAt   time.Time       `json:"created_at"`
	CompletedAt *time.Time      `json:"completed_at"`
	Steps       []stepJSON      `json:"steps"`
}

// stepJSON is a step in --json output. Ready is set by task show only,
// which reads the task's readiness; step start, resolve and reset print the
// step's state without it.
type stepJSON struct {
	StepUUID    string     `json:"step_uuid"`
	Name        string     `json:"name"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	MaxAttempts int        `json:"max_attempts"`
	Ready       *bool      `json:"ready,omitempty"`
	NextRetryAt *time.Time `json:"next_retry_at"`
}

// parseTemplateRef parses NAMESPACE/NAME[@VERSION], where VERSION is
// MAJOR.MINOR.PATCH or latest. Latest (or no version) leaves Version empty:
// the newest applied version, compared numerically (10.0.0 after 9.0.0).
func parseTemplateRef(s string) (events.CreateTaskParams, error) {
	var p events.CreateTaskParams
	ref, version, hasVersion := strings.Cut(s, "@")
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") || (hasVersion && version == "") {
		return p, fmt.Errorf("invalid template %q: write NAMESPACE/NAME or NAMESPACE/NAME@VERSION", s)
	}
	switch {
	case version == "latest":
		version = ""
	case hasVersion && template.ValidVersion(version) != nil: // the loader's rule
		return p, fmt.Errorf("invalid version %q in template %q: write MAJOR.MINOR.PATCH like 1.0.0 (digits only, "+
			"no leading zeros), or latest", version, s)
	}
	p.Namespace, p.Name, p.Version = ns, name, version
	return p, nil
}

func versionSuffix(v string) string {
	if v == "" {
		return "@latest"
	}
	return "@" + v
}
