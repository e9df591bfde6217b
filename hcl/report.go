package hcl

import (
	"bytes"
	"strconv"
	"strings"

	hcl2 "github.com/hashicorp/hcl/v2"
)

// Report is the stable machine-readable shape of a validation result, what
// `zhost validate -json` prints. Diagnostics is never nil, so it encodes
// as an array.
type Report struct {
	Valid        bool               `json:"valid"`
	ErrorCount   int                `json:"error_count"`
	WarningCount int                `json:"warning_count"`
	Diagnostics  []ReportDiagnostic `json:"diagnostics"`
}

// ReportDiagnostic is one diagnostic of a Report.
type ReportDiagnostic struct {
	Severity string       `json:"severity"` // "error" or "warning"
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *ReportRange `json:"range"`   // null when the problem has no place in a file
	Snippet  *Snippet     `json:"snippet"` // null when the source is not available
}

// ReportRange is a span of a config file; lines and columns count from 1,
// columns in characters, bytes from 0.
type ReportRange struct {
	Filename string    `json:"filename"`
	Start    ReportPos `json:"start"`
	End      ReportPos `json:"end"`
}

// ReportPos is one position of a ReportRange.
type ReportPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Snippet is the source around a diagnostic.
type Snippet struct {
	// Context names the enclosing top-level block, `storage "main"`, or is
	// empty at the top level.
	Context string `json:"context"`
	// Code is the whole lines the range covers.
	Code      string `json:"code"`
	StartLine int    `json:"start_line"`
	// HighlightStartOffset and HighlightEndOffset are byte offsets into
	// Code of the range itself.
	HighlightStartOffset int `json:"highlight_start_offset"`
	HighlightEndOffset   int `json:"highlight_end_offset"`
}

// NewReport builds a Report from diagnostics and the parsed files
// (Parser.Files) that their snippets are cut from.
func NewReport(diags hcl2.Diagnostics, files map[string]*hcl2.File) *Report {
	r := &Report{Diagnostics: []ReportDiagnostic{}}
	for _, d := range diags {
		if d == nil {
			continue
		}
		rd := ReportDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl2.DiagWarning {
			rd.Severity = "warning"
			r.WarningCount++
		} else {
			r.ErrorCount++
		}
		if d.Subject != nil {
			s := *d.Subject
			rd.Range = &ReportRange{
				Filename: s.Filename,
				Start:    ReportPos{Line: s.Start.Line, Column: s.Start.Column, Byte: s.Start.Byte},
				End:      ReportPos{Line: s.End.Line, Column: s.End.Column, Byte: s.End.Byte},
			}
			rd.Snippet = snippet(files[s.Filename], s)
		}
		r.Diagnostics = append(r.Diagnostics, rd)
	}
	r.Valid = r.ErrorCount == 0
	return r
}

// snippet cuts the lines of rng out of file; nil when it cannot.
func snippet(file *hcl2.File, rng hcl2.Range) *Snippet {
	if file == nil || file.Bytes == nil {
		return nil
	}
	src := file.Bytes
	start, end := rng.Start.Byte, rng.End.Byte
	if start < 0 || end < start || end > len(src) {
		return nil
	}
	lineStart := bytes.LastIndexByte(src[:start], '\n') + 1
	lineEnd := len(src)
	if i := bytes.IndexByte(src[end:], '\n'); i >= 0 {
		lineEnd = end + i
	}
	if lineEnd < lineStart {
		lineEnd = lineStart
	}
	sn := &Snippet{
		Code:                 strings.TrimRight(string(src[lineStart:lineEnd]), "\r"),
		StartLine:            rng.Start.Line,
		HighlightStartOffset: start - lineStart,
		HighlightEndOffset:   end - lineStart,
	}
	if sn.HighlightEndOffset > len(sn.Code) {
		sn.HighlightEndOffset = len(sn.Code)
	}
	if sn.HighlightStartOffset > sn.HighlightEndOffset {
		sn.HighlightStartOffset = sn.HighlightEndOffset
	}
	if blk := file.OutermostBlockAtPos(rng.Start); blk != nil {
		parts := []string{blk.Type}
		for _, l := range blk.Labels {
			parts = append(parts, strconv.Quote(l))
		}
		sn.Context = strings.Join(parts, " ")
	}
	return sn
}
