package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	exitOK    = 0
	exitUser  = 1
	exitUsage = 2
)

// connectTimeout bounds how long the CLI waits for the database.
const connectTimeout = 5 * time.Second

// userError is an error from running a command (not from parsing it): it
// exits 1 with its one-line message.
type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// app holds the global flags and output streams.
type app struct {
	databaseURL string
	json        bool
	stdout      io.Writer
	stderr      io.Writer
}

// run executes the CLI with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ue *userError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "stepevents: %s\n", oneLine(ue.err))
		return exitUser
	}
	fmt.Fprintf(stderr, "stepevents: %s\n", oneLine(err))
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", root.Name())
	return exitUsage
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "stepevents",
		Short:         "Record workflow step results and publish their domain events",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	env := os.Getenv("DATABASE_URL")
	root.PersistentFlags().StringVar(&a.databaseURL, "database-url", env,
		"PostgreSQL URL; the default is $DATABASE_URL")
	// --help prints the default: without its password, which is a secret.
	root.PersistentFlags().Lookup("database-url").DefValue = redactDSN(env)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	// A --database-url given on the command line that cannot be parsed is a
	// usage error (exit 2); a bad DATABASE_URL is reported on connecting.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if f := cmd.Flags().Lookup("database-url"); f != nil && f.Changed && a.databaseURL != "" {
			if _, err := pgconn.ParseConfig(a.databaseURL); err != nil {
				return errors.New("invalid --database-url: check its syntax (postgres://user@host:port/db)")
			}
		}
		return nil
	}
	root.AddCommand(a.migrateCmd(), a.templateCmd(), a.taskCmd(), a.stepCmd())
	for _, c := range moreCommands {
		root.AddCommand(c(a))
	}
	return root
}

// moreCommands lets each command file register itself from init, so command
// groups can be added without touching this file.
var moreCommands []func(*app) *cobra.Command

// group returns a command that only holds subcommands: run without one (or
// with an unknown one) it is a usage error.
func group(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return fmt.Errorf("%s needs a subcommand", cmd.CommandPath())
		},
	}
}

// runE marks every error fn returns as a user error (exit 1).
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			var ue *userError
			if errors.As(err, &ue) {
				return err
			}
			return &userError{err: err}
		}
		return nil
	}
}

// pool connects to the database, failing fast when it is unreachable.
func (a *app) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if a.databaseURL == "" {
		return nil, errors.New("no database: set --database-url or DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(a.databaseURL)
	if err != nil {
		return nil, errors.New("invalid --database-url: check its syntax (postgres://user@host:port/db)")
	}
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	readCommitted(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("no database reachable at %s: %s", redactURL(cfg), rootCause(err))
	}
	return pool, nil
}

// readCommitted makes READ COMMITTED the default of cfg's connections
// where the server's or role's default is stricter: stepevents' step
// operations refuse other isolation levels (see ARCHITECTURE.md). It sets
// it after connecting, only when needed, not as a startup parameter, which
// connection poolers such as PgBouncer refuse.
func readCommitted(cfg *pgxpool.Config) {
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, conn); err != nil {
				return err
			}
		}
		var level string
		if err := conn.QueryRow(ctx, `SHOW default_transaction_isolation`).Scan(&level); err != nil {
			return fmt.Errorf("reading default_transaction_isolation: %w", err)
		}
		if level == "read committed" || level == "read uncommitted" {
			return nil
		}
		_, err := conn.Exec(ctx, `SET default_transaction_isolation = 'read committed'`)
		return err
	}
}

// redactDSN shows what a connection string points at, never its secrets:
// it is rebuilt from pgx's parse of it (user@host:port/database, and
// "password set" when there is one) instead of edited, so no spelling of a
// password (percent-encoded, escaped, several hosts, sslpassword) can leak.
func redactDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(set, but not a valid connection string)"
	}
	var shown string
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory
		shown = fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d", cfg.User, cfg.Database, cfg.Host, cfg.Port)
	} else {
		shown = fmt.Sprintf("postgres://%s@%s/%s", cfg.User,
			net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
	}
	// Fallbacks repeat a host for each TLS mode to try; count other hosts.
	others := map[string]bool{}
	for _, f := range cfg.Fallbacks {
		if f.Host != cfg.Host || f.Port != cfg.Port {
			others[net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port)))] = true
		}
	}
	if n := len(others); n > 0 {
		shown += fmt.Sprintf(" (and %d more host(s))", n)
	}
	if cfg.Password != "" || strings.Contains(dsn, "sslpassword") {
		shown += " (with a password)"
	}
	return shown
}

func redactURL(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// rootCause keeps the last clause of a connection error ("connection refused").
func rootCause(err error) string {
	msg := oneLine(err)
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}
