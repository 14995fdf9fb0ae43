package ruby_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepevents/stepevents/events"
)

const patternTable = "testdata/patterns.json"

// patternCases is testdata/patterns.json: the cases of
// events/pattern_test.go plus edge cases of split-based matchers.
type patternCases struct {
	Matches []struct {
		Pattern string `json:"pattern"`
		Name    string `json:"name"`
		Match   bool   `json:"match"`
	} `json:"matches"`
	Invalid []struct {
		Pattern       string `json:"pattern"`
		ErrorContains string `json:"error_contains"`
	} `json:"invalid"`
}

// rubyPatternResults is what `run.rb --check-patterns` prints.
type rubyPatternResults struct {
	Matches []struct {
		Pattern string  `json:"pattern"`
		Name    string  `json:"name"`
		Match   *bool   `json:"match"`
		Error   *string `json:"error"`
	} `json:"matches"`
	Invalid []struct {
		Pattern string  `json:"pattern"`
		Error   *string `json:"error"`
	} `json:"invalid"`
}

func loadPatternCases(t *testing.T) patternCases {
	t.Helper()
	raw, err := os.ReadFile(patternTable)
	require.NoError(t, err)
	var pc patternCases
	require.NoError(t, json.Unmarshal(raw, &pc))
	require.GreaterOrEqual(t, len(pc.Matches), 30)
	require.NotEmpty(t, pc.Invalid)
	return pc
}

// TestPatternTableAgreesWithGo keeps the shared table honest: Go's grammar
// decides every case the way the table says.
func TestPatternTableAgreesWithGo(t *testing.T) {
	t.Parallel()
	pc := loadPatternCases(t)
	for _, c := range pc.Matches {
		p, err := events.ParsePattern(c.Pattern)
		require.NoError(t, err, c.Pattern)
		require.Equal(t, c.Match, p.Match(c.Name), "Go: pattern %q, name %q", c.Pattern, c.Name)
	}
	for _, c := range pc.Invalid {
		_, err := events.ParsePattern(c.Pattern)
		require.ErrorIs(t, err, events.ErrInvalidInput, c.Pattern)
		require.Contains(t, err.Error(), c.ErrorContains, c.Pattern)
	}
}

// TestPatternTableAgreesWithRuby runs the same table through the Ruby
// subscriber's Pattern: same matches, same rejections, same explanations.
func TestPatternTableAgreesWithRuby(t *testing.T) {
	t.Parallel()
	pc := loadPatternCases(t)
	out, err := exec.Command(rubyBin(t), runScript, "--check-patterns", patternTable).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("run.rb --check-patterns failed: %v\n%s", err, exitErr.Stderr)
	}
	require.NoError(t, err)
	var got rubyPatternResults
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)

	require.Len(t, got.Matches, len(pc.Matches))
	for i, c := range pc.Matches {
		g := got.Matches[i]
		require.Equal(t, c.Pattern, g.Pattern)
		require.Equal(t, c.Name, g.Name)
		require.Nil(t, g.Error, "Ruby rejected valid pattern %q", c.Pattern)
		require.NotNil(t, g.Match)
		require.Equal(t, c.Match, *g.Match, "Ruby: pattern %q, name %q", c.Pattern, c.Name)
	}
	require.Len(t, got.Invalid, len(pc.Invalid))
	for i, c := range pc.Invalid {
		g := got.Invalid[i]
		require.Equal(t, c.Pattern, g.Pattern)
		require.NotNil(t, g.Error, "Ruby accepted invalid pattern %q", c.Pattern)
		require.Contains(t, *g.Error, c.ErrorContains, "Ruby explains %q as Go does", c.Pattern)
	}
}
