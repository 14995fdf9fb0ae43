package testdb

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// exampleTB lets runnable Example functions, which get no *testing.T, use
// per-test databases. Fatal errors end the process; cleanups run in Main.
type exampleTB struct {
	mu       sync.Mutex
	cleanups []func()
}

var examples exampleTB

func (*exampleTB) Helper()             {}
func (*exampleTB) Logf(string, ...any) {}
func (*exampleTB) Failed() bool        { return false }
func (*exampleTB) Fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}
func (e *exampleTB) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

func (e *exampleTB) runCleanups() {
	e.mu.Lock()
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// Example returns a pool on a fresh migrated database for an Example
// function. The pool is closed and the database dropped when the package's
// tests end (Main).
func Example() *pgxpool.Pool {
	url := Custom(&examples, migrator{}).URL()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		examples.Fatalf("testdb: error connecting: %v", err)
	}
	examples.Cleanup(pool.Close)
	return pool
}
