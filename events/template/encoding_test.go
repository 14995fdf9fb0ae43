package template_test

import (
	"encoding/binary"
	"os"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events/template"
)

// A template saved as UTF-16 with a byte-order mark (what some Windows
// editors write) loads like its UTF-8 original: only bytes that are neither
// are refused (invalid_utf8.yaml).
func TestUTF16WithByteOrderMarkLoads(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(goodFixture)
	require.NoError(t, err)
	want, err := template.Load("utf8.yaml", src)
	require.NoError(t, err)

	units := utf16.Encode([]rune(string(src)))
	le := []byte{0xff, 0xfe}
	for _, u := range units {
		le = binary.LittleEndian.AppendUint16(le, u)
	}
	got, err := template.Load("utf16.yaml", le)
	require.NoError(t, err)
	require.Equal(t, want.Name, got.Name)
	require.JSONEq(t, string(want.Definition), string(got.Definition))
}
