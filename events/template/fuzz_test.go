package template_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stepevents/stepevents/events/template"
)

// FuzzLoad checks Load never panics, always explains a failure with
// well-formed problems, and that an accepted template's Definition reloads
// to itself (storage round trip).
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"../../test/templates/good/*.yaml", "../../test/templates/bad/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := template.Load("fuzz.yaml", data)
		if err != nil {
			var terr *template.Error
			if !errors.As(err, &terr) || len(terr.Problems) == 0 {
				t.Fatalf("error %T %v is not a *template.Error with problems", err, err)
			}
			for _, p := range terr.Problems {
				if p.Line < 1 || p.Column < 1 || p.Path == "" || p.Message == "" || p.File != "fuzz.yaml" {
					t.Fatalf("malformed problem %#v", p)
				}
			}
			return
		}
		if !json.Valid(tpl.Definition) {
			t.Fatalf("definition is not JSON: %s", tpl.Definition)
		}
		again, err := template.Load("stored.json", tpl.Definition)
		if err != nil {
			t.Fatalf("definition does not reload: %v\n%s", err, tpl.Definition)
		}
		if string(again.Definition) != string(tpl.Definition) {
			t.Fatalf("definition changed on reload:\n%s\n%s", tpl.Definition, again.Definition)
		}
	})
}
