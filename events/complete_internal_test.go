package events

import "testing"

func TestHasNULEscape(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		`{"a":"\u0000"}`:        true,
		`{"a":"x\u0000y"}`:      true,
		`{"a":"\\u0000"}`:       false, // an escaped backslash, then text
		`{"a":"\\\u0000"}`:      true,  // an escaped backslash, then NUL
		`{"a":"\\u0000\u0000"}`: true,
		`{"a":"u0000"}`:         false,
		`{}`:                    false,
	}
	for doc, want := range cases {
		if got := hasNULEscape([]byte(doc)); got != want {
			t.Errorf("hasNULEscape(%s) = %t, want %t", doc, got, want)
		}
	}
}
