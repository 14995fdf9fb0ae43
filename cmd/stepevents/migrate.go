package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stepevents/stepevents/migrations"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := group("migrate", "Apply, roll back or show stepevents' migrations")
	withMigrator := func(fn func(cmd *cobra.Command, m *migrations.Migrator) error) func(*cobra.Command, []string) error {
		return runE(func(cmd *cobra.Command, _ []string) error {
			pool, err := a.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			m, err := migrations.New(pool, nil)
			if err != nil {
				return err
			}
			defer m.Close()
			return fn(cmd, m)
		})
	}
	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: withMigrator(func(cmd *cobra.Command, m *migrations.Migrator) error {
			if err := m.Up(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "migrated up")
			return nil
		}),
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll back every migration (to version 0)",
		Args:  cobra.NoArgs,
		RunE: withMigrator(func(cmd *cobra.Command, m *migrations.Migrator) error {
			if err := m.DownTo(cmd.Context(), 0); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "migrated down to version 0")
			return nil
		}),
	}
	status := a.withJSON(&cobra.Command{
		Use:   "status",
		Short: "List every migration and whether it is applied",
		Args:  cobra.NoArgs,
		RunE: withMigrator(func(cmd *cobra.Command, m *migrations.Migrator) error {
			st, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				type row struct {
					Version int64  `json:"version"`
					Applied bool   `json:"applied"`
					Source  string `json:"source"`
				}
				rows := make([]row, 0, len(st))
				for _, s := range st {
					rows = append(rows, row{s.Version, s.Applied, s.Source})
				}
				return a.printJSON(rows)
			}
			w := a.table()
			fmt.Fprintln(w, "VERSION\tAPPLIED\tSOURCE")
			for _, s := range st {
				src := s.Source
				if src == "" {
					src = "(go migration)"
				}
				fmt.Fprintf(w, "%d\t%t\t%s\n", s.Version, s.Applied, src)
			}
			return w.Flush()
		}),
	})
	cmd.AddCommand(up, down, status)
	return cmd
}
