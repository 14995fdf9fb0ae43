package pgmqcontract_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package on leaked goroutines (pools, listeners).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
