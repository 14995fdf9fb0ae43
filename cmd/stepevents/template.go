package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

func (a *app) templateCmd() *cobra.Command {
	cmd := group("template", "Validate, apply and list task templates")
	var env string
	validate := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check template files and print every problem as file:line:column: path: message",
		Args:  cobra.MinimumNArgs(1),
		RunE: runE(func(_ *cobra.Command, args []string) error {
			_, err := a.loadAll(args, env)
			if err != nil {
				return err
			}
			for _, f := range args {
				fmt.Fprintf(a.stdout, "%s: ok\n", f)
			}
			return nil
		}),
	}
	validate.Flags().StringVar(&env, "env", "", "apply this environment's overrides")
	apply := &cobra.Command{
		Use:   "apply FILE...",
		Short: "Validate template files, then store them all in one transaction, or none (idempotent; creates the queues)",
		Args:  cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			tpls, err := a.loadAll(args, env)
			if err != nil {
				return err
			}
			pool, err := a.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			// All or nothing: every file in one transaction, so a file the
			// database refuses leaves none of the others stored. Each
			// template's lock and its namespace queue's lock are held to the
			// end: all template locks first, then the templates in one
			// order, so that two applies cannot deadlock.
			events.SortTemplates(tpls)
			ctx := cmd.Context()
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if err := events.LockTemplatesTx(ctx, tx, tpls); err != nil {
					return err
				}
				for _, t := range tpls {
					if err := events.ApplyTemplateTx(ctx, tx, t); err != nil {
						what := "template " + templateRef(t) + " (" + t.Source + ")"
						if len(tpls) > 1 {
							return fmt.Errorf("%w; none of the %d files was applied", explain(what, err), len(tpls))
						}
						return explain(what, err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, t := range tpls {
				fmt.Fprintf(a.stdout, "applied %s from %s\n", templateRef(t), t.Source)
			}
			return nil
		}),
	}
	apply.Flags().StringVar(&env, "env", "", "apply this environment's overrides")
	list := a.withJSON(&cobra.Command{
		Use:   "list",
		Short: "List stored templates",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			pool, err := a.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			ts, err := events.ListTemplates(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if a.json {
				type row struct {
					Namespace   string `json:"namespace"`
					Name        string `json:"name"`
					Version     string `json:"version"`
					Description string `json:"description"`
					Steps       int    `json:"steps"`
					Events      int    `json:"events"`
				}
				rows := make([]row, 0, len(ts))
				for _, t := range ts {
					rows = append(rows, row{t.Namespace, t.Name, t.Version, t.Description, t.Steps, t.Events})
				}
				return a.printJSON(rows)
			}
			w := a.table()
			fmt.Fprintln(w, "NAMESPACE\tNAME\tVERSION\tSTEPS\tEVENTS\tDESCRIPTION")
			for _, t := range ts {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", t.Namespace, t.Name, t.Version, t.Steps, t.Events, t.Description)
			}
			return w.Flush()
		}),
	})
	cmd.AddCommand(validate, apply, list)
	return cmd
}

// loadAll loads every file, printing each problem (errors and warnings) on
// stdout; it fails when any file has errors.
func (a *app) loadAll(files []string, env string) ([]*template.Template, error) {
	var opts []template.Option
	if env != "" {
		opts = append(opts, template.WithEnvironment(env))
	}
	var tpls []*template.Template
	problems, bad := 0, 0
	for _, f := range files {
		t, err := template.LoadFile(f, opts...)
		if err != nil {
			bad++
			var te *template.Error
			if errors.As(err, &te) {
				for _, p := range te.Problems {
					fmt.Fprintln(a.stdout, p.String())
				}
				problems += len(te.Problems)
				continue
			}
			fmt.Fprintf(a.stdout, "%s: %s\n", f, oneLine(err))
			problems++
			continue
		}
		for _, w := range t.Warnings {
			fmt.Fprintf(a.stdout, "%s:%d:%d: %s: warning: %s\n", w.File, w.Line, w.Column, w.Path, w.Message)
		}
		tpls = append(tpls, t)
	}
	if bad > 0 {
		return nil, fmt.Errorf("%d problem(s) in %d of %d template file(s): fix them and run again", problems, bad, len(files))
	}
	return tpls, nil
}

// templateRef is NAMESPACE/NAME@VERSION.
func templateRef(t *template.Template) string {
	return fmt.Sprintf("%s/%s@%s", t.Namespace, t.Name, t.Version)
}
