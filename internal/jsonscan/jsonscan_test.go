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

// Bool and Int decode what json.Unmarshal decodes into a bool and an int,
// and fail where it fails.
func TestBoolAndIntMatchEncodingJSON(t *testing.T) {
	for _, s := range []string{"true", "false", "null", "0", "1", `"true"`, "tru", "[]", "-7", "42", "1.0", "1e3",
		"-0", "99999999999999999999", `"1"`, "{}"} {
		wantB, gotB := true, true
		wantErr := json.Unmarshal([]byte(s), &wantB) != nil
		if gotErr := Bool([]byte(s), &gotB) != nil; gotErr != wantErr || (!wantErr && gotB != wantB) {
			t.Errorf("Bool(%q) = %t, error %t; json.Unmarshal %t, error %t", s, gotB, gotErr, wantB, wantErr)
		}
		wantI, gotI := 5, 5
		wantErr = json.Unmarshal([]byte(s), &wantI) != nil
		if gotErr := Int([]byte(s), &gotI) != nil; gotErr != wantErr || (!wantErr && gotI != wantI) {
			t.Errorf("Int(%q) = %d, error %t; json.Unmarshal %d, error %t", s, gotI, gotErr, wantI, wantErr)
		}
	}
}
