package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// errTooLarge wraps http.MaxBytesError for statusOfBody.
var errTooLarge = errors.New("request body too large")

// readJSON decodes the request body (at most MaxBodyBytes) into v.
func (a *App) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return a.decodeBody(w, r, v, false)
}

// readJSONStrict is readJSON that rejects unknown fields (a misspelt
// "if_match" must not be ignored silently).
func (a *App) readJSONStrict(w http.ResponseWriter, r *http.Request, v any) error {
	return a.decodeBody(w, r, v, true)
}

func (a *App) decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: limit %d bytes", errTooLarge, mbe.Limit)
		}
		return fmt.Errorf("read body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return &badRequestError{msg: "body is not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return &badRequestError{msg: "body holds more than one JSON value"}
	}
	return nil
}

// readJSONObject decodes a body that must be one JSON object, converting
// numbers for the object layer (see normalize).
func (a *App) readJSONObject(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	var v any
	if err := a.readJSON(w, r, &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &badRequestError{msg: "body must be a JSON object"}
	}
	out, err := normalizeMap(m, 1)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func statusOfBody(err error) int {
	if errors.Is(err, errTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// normalize converts decoded JSON for storage: integral numbers become
// int64 (exact up to 2^63), other numbers float64; nesting is bounded by
// MaxJSONDepth.
func normalize(v any, depth int) (any, error) {
	if depth > MaxJSONDepth {
		return nil, &badRequestError{msg: fmt.Sprintf("JSON nested deeper than %d levels", MaxJSONDepth)}
	}
	switch t := v.(type) {
	case map[string]any:
		return normalizeMap(t, depth)
	case []any:
		for i, x := range t {
			n, err := normalize(x, depth+1)
			if err != nil {
				return nil, err
			}
			t[i] = n
		}
		return t, nil
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, &badRequestError{msg: fmt.Sprintf("number %s is out of range", t)}
		}
		return f, nil
	default:
		return t, nil
	}
}

func normalizeMap(m map[string]any, depth int) (map[string]any, error) {
	if depth > MaxJSONDepth {
		return nil, &badRequestError{msg: fmt.Sprintf("JSON nested deeper than %d levels", MaxJSONDepth)}
	}
	for k, x := range m {
		n, err := normalize(x, depth+1)
		if err != nil {
			return nil, err
		}
		m[k] = n
	}
	return m, nil
}
