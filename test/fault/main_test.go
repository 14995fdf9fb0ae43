// Package fault_test injects faults into stepevents running on a real
// PostgreSQL — terminated backends, statement timeouts, handler panics,
// cancelled contexts, a listener whose connection keeps dying — and checks
// the promises that must survive them: nothing committed is lost, nothing
// rolled back is published, and every transition history stays consistent.
package fault_test

import (
	"testing"

	"github.com/stepevents/stepevents/test/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
