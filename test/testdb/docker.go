package testdb

import (
	"fmt"
	"sync"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

// dockerImage ships the pgmq extension, so the contract suite runs against
// the real thing where Docker exists.
const dockerImage = "ghcr.io/pgmq/pg17-pgmq"

var (
	dockerMu       sync.Mutex
	dockerPool     *dockertest.Pool
	dockerResource *dockertest.Resource
)

// startDocker starts a throwaway PostgreSQL container. It expires after ten
// minutes even if the test binary is killed, and Main purges it.
func startDocker() (string, error) {
	dockerMu.Lock()
	defer dockerMu.Unlock()
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoDocker, err)
	}
	if err := pool.Client.Ping(); err != nil {
		return "", fmt.Errorf("%w: %w", errNoDocker, err)
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: dockerImage,
		Tag:        "v1.13.0",
		Env:        []string{"POSTGRES_PASSWORD=postgres", "POSTGRES_HOST_AUTH_METHOD=trust"},
		Cmd:        []string{"postgres", "-c", "fsync=off", "-c", "max_connections=300"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return "", fmt.Errorf("error starting PostgreSQL in Docker: %w", err)
	}
	_ = res.Expire(600)
	u := fmt.Sprintf("postgres://postgres:postgres@%s/postgres?sslmode=disable", res.GetHostPort("5432/tcp"))
	if err := pool.Retry(func() error { return ping(u) }); err != nil {
		_ = pool.Purge(res)
		return "", fmt.Errorf("error waiting for PostgreSQL in Docker: %w", err)
	}
	dockerPool, dockerResource = pool, res
	return u, nil
}

// stopDocker purges the container started by startDocker, if any.
func stopDocker() {
	dockerMu.Lock()
	defer dockerMu.Unlock()
	if dockerPool != nil && dockerResource != nil {
		_ = dockerPool.Purge(dockerResource)
		dockerPool, dockerResource = nil, nil
	}
}
