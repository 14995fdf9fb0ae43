package template

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are yaml.v3's parser (not scanner) messages. yaml.v3
// reports their line 0-based (and omits line 0), unlike scanner errors.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// syntaxError records a YAML parse error. yaml.v3 reports a line but no
// column; syntaxColumn points at the likely culprit on that line.
func (d *decoder) syntaxError(data []byte, err error) {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	}
	line = max(line, 1)
	d.errs = append(d.errs, Problem{File: d.file, Line: line, Column: syntaxColumn(lineText(data, line), msg),
		Path: documentPath, Message: "YAML syntax error: " + msg})
}

// lineText returns line n (1-based) of data, without its line break, or ""
// past the end.
func lineText(data []byte, n int) string {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return ""
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return strings.TrimSuffix(string(data), "\r")
}

// syntaxColumn guesses the 1-based column (in characters) of the problem
// msg reports on text: the unclosed bracket, the character no token may
// start with, the colon of a nested mapping; else the line's first
// non-blank character.
func syntaxColumn(text, msg string) int {
	at := -1
	switch msg {
	case "did not find expected ',' or '}'":
		at = strings.LastIndexByte(text, '{')
	case "did not find expected ',' or ']'":
		at = strings.LastIndexByte(text, '[')
	case "found character that cannot start any token":
		at = tokenStart(text)
	case "mapping values are not allowed in this context":
		if first := strings.Index(text, ": "); first >= 0 {
			if second := strings.Index(text[first+2:], ":"); second >= 0 {
				at = first + 2 + second
			}
		}
	}
	if at < 0 {
		at = len(text) - len(strings.TrimLeft(text, " \t"))
		if at == len(text) {
			return 1
		}
	}
	return utf8.RuneCountInString(text[:at]) + 1
}

// validUTF8 records a problem at the first byte that is not UTF-8: yaml.v3
// reports such bytes without a position. UTF-16 with a byte-order mark
// (what some Windows editors save) is left to yaml.v3, which reads it.
func (d *decoder) validUTF8(data []byte) bool {
	if utf8.Valid(data) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return true // UTF-16 with a byte-order mark: yaml.v3 decodes it
	}
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			d.errs = append(d.errs, Problem{File: d.file, Line: line, Column: col, Path: documentPath,
				Message: "invalid UTF-8: byte 0x" + strconv.FormatUint(uint64(data[i]), 16) +
					" cannot be read as text; save the template as UTF-8"})
			return false
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return true
}

// tokenStart returns the index of the first tab, '`', '@' or '%' where a
// token would start (at the line's start or after a blank or indicator),
// or -1.
func tokenStart(text string) int {
	for i := 0; i < len(text); i++ {
		if !strings.ContainsRune("\t`@%", rune(text[i])) {
			continue
		}
		if i == 0 || strings.ContainsRune(" \t:[{,-", rune(text[i-1])) {
			return i
		}
	}
	return -1
}
