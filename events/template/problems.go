package template

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one finding in a template, located precisely enough for an
// editor to jump to it.
type Problem struct {
	// File is the name given to Load.
	File string
	// Line and Column are 1-based positions of the offending YAML node.
	Line, Column int
	// Path is the field path, e.g. "steps[1].publishes_events[0].condition";
	// "(document)" for problems with the file as a whole.
	Path string
	// Message says what is wrong and what is allowed.
	Message string
}

// String formats the problem as "file:line:column: path: message", the form
// compilers use, so editors and CI annotate it.
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Column, p.Path, p.Message)
}

// Error is returned by Load when a template has errors. It carries every
// problem found, so one run shows everything to fix.
type Error struct {
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// documentPath is the Path of problems that concern the whole file.
const documentPath = "(document)"

// sortProblems orders problems by position, so output reads like the file.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Path, b.Path), cmp.Compare(a.Message, b.Message))
	})
}
