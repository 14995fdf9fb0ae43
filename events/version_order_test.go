package events_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
	"github.com/stepevents/stepevents/events/template"
)

// The newest version is chosen as numbers, also with a part above 2^31-1
// (stored before the loader refused them: here applied directly), and the
// database refuses new versions with leading zeros, which would tie.
func TestNewestVersionWithLargeParts(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	yaml := `
name: big
namespace_name: ver
version: 1.0.0
steps:
  - name: a
    handler: {callable: ver.a}
`
	for _, v := range []string{"1.0.0", "3000000000.0.0", "9.0.0"} {
		tpl, err := template.Load("big.yaml", []byte(yaml))
		require.NoError(t, err)
		tpl.Version = v
		require.NoError(t, b.client.ApplyTemplate(b.ctx, tpl), v)
	}
	id, err := b.client.CreateTask(b.ctx, events.CreateTaskParams{Namespace: "ver", Name: "big"})
	require.NoError(t, err)
	task, err := events.GetTask(b.ctx, b.pool, id)
	require.NoError(t, err)
	require.Equal(t, "3000000000.0.0", task.TemplateVersion)

	tpl, err := template.Load("big.yaml", []byte(yaml))
	require.NoError(t, err)
	tpl.Version = "01.0.0"
	require.ErrorIs(t, b.client.ApplyTemplate(b.ctx, tpl), events.ErrInvalidInput)
}
