package jsonscan

import (
	"encoding/json"
	"testing"
)

// NumberEnd accepts exactly the numbers encoding/json accepts.
func TestNumberEndMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "7", "-12", "10", "0.5", "-0.5", "1e9", "1E+9", "1e-9", "2.5e10", "12345678901234567891",
		"", "-", "01", "00", "1.", ".5", "1e", "1e+", "+1", "--1", "1.e5", "0x10", "1_000", "NaN", "-.5",
	} {
		j, ok := NumberEnd([]byte(s), 0)
		var n json.Number
		want := json.Unmarshal([]byte(s), &n) == nil && s != ""
		if got := ok && j == len(s); got != want {
			t.Errorf("NumberEnd(%q) = %d, %t; encoding/json accepts it: %t", s, j, ok, want)
		}
	}
	// A number ends where something else starts.
	if j, ok := NumberEnd([]byte(`-1.5e3,"x"`), 0); !ok || j != 6 {
		t.Errorf("NumberEnd stopped at %d, %t; want 6, true", j, ok)
	}
}
