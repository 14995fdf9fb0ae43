// Package security holds the tests that try to break stepevents' promises
// from outside its API: least-privilege roles (sql/roles.sql) used through
// the real code paths, hostile and malformed input on every surface that
// takes it (each refused with a clear error and nothing changed), concurrent
// completion of one step, and fast events forged or replayed by another
// database role. SECURITY.md states the threat model these tests check.
//
// Every test runs on its own database (testdb) and creates uniquely named
// LOGIN roles, dropped when it ends, so the tests run in parallel.
package security
