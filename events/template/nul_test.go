package template_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

// Free text with a NUL is refused at load time with its position, not by the
// database at apply time.
func TestNULInFreeText(t *testing.T) {
	t.Parallel()
	doc := "name: x\nnamespace_name: ns\nversion: 1.0.0\ndescription: \"a\\0b\"\nsteps:\n  - name: s\n    handler: {callable: h}\n"
	_, err := template.Load("nul.yaml", []byte(doc))
	require.EqualError(t, err, "nul.yaml:4:14: description: contains a NUL character, which PostgreSQL text cannot store")
}
