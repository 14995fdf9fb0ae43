package testdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points tests at a PostgreSQL server. The
// URL's role must be able to create roles and databases.
const EnvURL = "TEST_DATABASE_URL"

// localURLs are tried, in order, when EnvURL is unset: the usual socket and
// the loopback port, as the postgres superuser.
var localURLs = []string{
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	"postgres:///postgres?host=/var/run/postgresql&user=postgres",
}

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
)

// ServerURL returns an admin URL for the test server: EnvURL when set, else a
// local server that answers, else a throwaway one started with dockertest
// when a Docker engine is reachable. The error says how to provide one.
func ServerURL() (string, error) {
	serverOnce.Do(func() { serverURL, serverErr = findServer() })
	return serverURL, serverErr
}

func findServer() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		if err := ping(u); err != nil {
			return "", fmt.Errorf("%s=%s does not answer: %w", EnvURL, redact(u), err)
		}
		return u, nil
	}
	for _, u := range localURLs {
		if ping(u) == nil {
			return u, nil
		}
	}
	u, err := startDocker()
	if err == nil {
		return u, nil
	}
	return "", fmt.Errorf("no PostgreSQL for the tests: set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres), "+
		"run a local server on 127.0.0.1:5432, or start Docker (%w)", EnvURL, err)
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable URL)"
	}
	return p.Redacted()
}

var errNoDocker = errors.New("no Docker engine reachable")
