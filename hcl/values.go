package hcl

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The getters below read one attribute of a decoded body. They never panic:
// an absent attribute, or one of another type, reads as the zero value (use
// Has to tell absent from zero). They accept the forms a Values map takes
// after a trip through JSON or CBOR (numbers as float64, int64 or uint64),
// so a plugin can call them on what it received.

// Has reports whether name is present.
func (v Values) Has(name string) bool {
	_, ok := v[name]
	return ok
}

// String returns a string (string and path attributes).
func (v Values) String(name string) string {
	s, _ := v[name].(string)
	return s
}

// Bool returns a bool.
func (v Values) Bool(name string) bool {
	b, _ := v[name].(bool)
	return b
}

// Number returns a number as float64.
func (v Values) Number(name string) float64 {
	f, _ := toFloat(v[name])
	return f
}

// Int returns a number as int64, truncated toward zero.
func (v Values) Int(name string) int64 {
	f, ok := toFloat(v[name])
	if !ok || f >= math.MaxInt64 || f <= math.MinInt64 {
		if i, ok := v[name].(int64); ok {
			return i
		}
		return 0
	}
	return int64(f)
}

// Size returns a size in bytes.
func (v Values) Size(name string) int64 {
	switch x := v[name].(type) {
	case int64:
		return x
	case string:
		n, _ := ParseSize(x)
		return n
	}
	return v.Int(name)
}

// Duration returns a duration.
func (v Values) Duration(name string) time.Duration {
	switch x := v[name].(type) {
	case time.Duration:
		return x
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			d, _ = ParseDuration(x)
		}
		return d
	}
	return 0
}

// Strings returns a list of strings.
func (v Values) Strings(name string) []string {
	switch x := v[name].(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// StringMap returns a map of strings.
func (v Values) StringMap(name string) map[string]string {
	switch x := v[name].(type) {
	case map[string]string:
		return x
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			if s, ok := e.(string); ok {
				out[k] = s
			}
		}
		return out
	}
	return nil
}

func toFloat(x any) (float64, bool) {
	switch n := x.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	}
	return 0, false
}

// kindOf maps a Schema type to the decoder's kind.
func kindOf(t AttrType) (kind, bool) {
	switch t {
	case TypeString:
		return kString, true
	case TypeNumber:
		return kNumber, true
	case TypeBool:
		return kBool, true
	case TypeDuration:
		return kDuration, true
	case TypeSize:
		return kSize, true
	case TypePath:
		return kPath, true
	case TypeStringList:
		return kStringList, true
	case TypeStringMap:
		return kStringMap, true
	}
	return 0, false
}

// Check reports every mistake in a declared schema: bad or duplicate
// names, unknown types, defaults that do not fit their type, bounds that do
// not parse. The host calls it on what a plugin declares before using it.
func (s Schema) Check() error {
	var errs []error
	seen := map[string]bool{}
	for _, a := range s.Attributes {
		if !hclsyntax.ValidIdentifier(a.Name) {
			errs = append(errs, fmt.Errorf("attribute %q: not a valid name", a.Name))
			continue
		}
		if seen[a.Name] {
			errs = append(errs, fmt.Errorf("attribute %q: declared twice", a.Name))
		}
		seen[a.Name] = true
		k, ok := kindOf(a.Type)
		if !ok {
			errs = append(errs, fmt.Errorf("attribute %q: unknown type %q", a.Name, a.Type))
			continue
		}
		if len(a.Enum) > 0 && k != kString {
			errs = append(errs, fmt.Errorf("attribute %q: enum on a %s attribute", a.Name, a.Type))
		}
		for _, b := range []string{a.Min, a.Max} {
			if b == "" {
				continue
			}
			if _, err := parseBound(k, b); err != nil {
				errs = append(errs, fmt.Errorf("attribute %q: bound %q: %w", a.Name, b, err))
			}
		}
		if a.Default != nil {
			if a.Required {
				errs = append(errs, fmt.Errorf("attribute %q: required and has a default", a.Name))
			}
			if _, err := normalizeDefault(a); err != nil {
				errs = append(errs, fmt.Errorf("attribute %q: default: %w", a.Name, err))
			} else if _, err := normalizeValue(a, a.Default, func(p string) string { return p }); err != nil {
				// Within the attribute's own Min and Max, like a
				// written value.
				errs = append(errs, fmt.Errorf("attribute %q: default: %w", a.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// parseBound parses a Min or Max written for kind k into a float64 (number),
// time.Duration or int64 (size), compared by cmpBound.
func parseBound(k kind, s string) (float64, error) {
	switch k {
	case kDuration:
		d, err := ParseDuration(s)
		return float64(d), err
	case kSize:
		n, err := ParseSize(s)
		return float64(n), err
	case kNumber, kInt:
		var f float64
		if _, err := fmt.Sscanf(s, "%g", &f); err != nil {
			return 0, fmt.Errorf("not a number")
		}
		return f, nil
	}
	return 0, fmt.Errorf("bounds apply to numbers, durations and sizes")
}

// normalizeDefault returns a declared default in its Values form.
func normalizeDefault(a Attribute) (any, error) {
	switch a.Type {
	case TypeString, TypePath:
		s, ok := a.Default.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, have %T", a.Default)
		}
		if len(a.Enum) > 0 && !contains(a.Enum, s) {
			return nil, fmt.Errorf("%q is not one of %v", s, a.Enum)
		}
		return s, nil
	case TypeNumber:
		f, ok := toFloat(a.Default)
		if !ok {
			return nil, fmt.Errorf("want a number, have %T", a.Default)
		}
		return f, nil
	case TypeBool:
		b, ok := a.Default.(bool)
		if !ok {
			return nil, fmt.Errorf("want a bool, have %T", a.Default)
		}
		return b, nil
	case TypeDuration:
		switch d := a.Default.(type) {
		case time.Duration:
			return d.String(), nil
		case string:
			pd, err := ParseDuration(d)
			if err != nil {
				return nil, err
			}
			return pd.String(), nil
		}
		return nil, fmt.Errorf("want a duration, have %T", a.Default)
	case TypeSize:
		if s, ok := a.Default.(string); ok {
			return ParseSize(s)
		}
		f, ok := toFloat(a.Default)
		if !ok || f < 0 || f != math.Trunc(f) {
			return nil, fmt.Errorf("want a size, have %v", a.Default)
		}
		if i, ok := a.Default.(int64); ok {
			return i, nil
		}
		return int64(f), nil
	case TypeStringList:
		switch l := a.Default.(type) {
		case []string:
			return append([]string(nil), l...), nil
		}
		return nil, fmt.Errorf("want a []string, have %T", a.Default)
	case TypeStringMap:
		switch m := a.Default.(type) {
		case map[string]string:
			out := make(map[string]string, len(m))
			for k, v := range m {
				out[k] = v
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a map[string]string, have %T", a.Default)
	}
	return nil, fmt.Errorf("unknown type %q", a.Type)
}

// toValue converts a decoded value of kind k to its Values form.
func toValue(k kind, v any) any {
	switch k {
	case kDuration:
		if d, ok := v.(time.Duration); ok {
			return d.String()
		}
	case kNumber:
		if f, ok := toFloat(v); ok {
			return f
		}
	}
	return v
}

// DecodeOptions tunes DecodeBody.
type DecodeOptions struct {
	// BaseDir resolves relative TypePath values; empty leaves them as
	// written.
	BaseDir string
	// Skip lists attribute names the caller decodes itself; they are
	// allowed in the body and left out of the result.
	Skip []string
}

// DecodeBody decodes body with schema into Values: every attribute is
// checked (type, enum, bounds, required), defaults are filled in, and an
// attribute the schema does not declare is an error at its line with a
// suggestion when it looks like a typo. Nested blocks are not allowed. It
// is safe for concurrent use on different bodies. A schema that fails
// Check is reported as one error diagnostic at the body.
func DecodeBody(body hcl2.Body, schema Schema, opts DecodeOptions) (Values, hcl2.Diagnostics) {
	if err := schema.Check(); err != nil {
		return nil, hcl2.Diagnostics{{
			Severity: hcl2.DiagError,
			Summary:  "Invalid declared schema",
			Detail:   err.Error(),
			Subject:  body.MissingItemRange().Ptr(),
		}}
	}
	d := &decoder{baseDir: opts.BaseDir}
	attrs, skip := schemaAttrs(schema, opts.Skip)
	bs := &blockSpec{Attrs: attrs}
	for _, n := range skip {
		bs.Attrs = append(bs.Attrs, attrSpec{Name: n, Kind: kAny})
	}
	bd := d.decodeBody(bs, body, body.MissingItemRange(), "")
	out := Values{}
	for _, a := range attrs {
		if av := bd.attrs[a.Name]; av != nil && !av.bad {
			out[a.Name] = toValue(a.Kind, av.value)
		}
	}
	return out, d.diags
}

// schemaAttrs converts a checked schema into attribute specs, leaving out
// the names in skip (which it returns).
func schemaAttrs(schema Schema, skip []string) ([]attrSpec, []string) {
	var out []attrSpec
	for _, a := range schema.Attributes {
		if contains(skip, a.Name) {
			continue
		}
		k, _ := kindOf(a.Type)
		as := attrSpec{Name: a.Name, Kind: k, Required: a.Required, Enum: a.Enum, Min: a.Min, Max: a.Max, Description: a.Description}
		if a.Default != nil {
			v, err := normalizeDefault(a)
			if err == nil {
				if k == kDuration {
					// Decoded values are time.Duration until toValue.
					dv, _ := time.ParseDuration(v.(string))
					v = dv
				}
				as.defaultValue = v
				as.hasDefault = true
			}
		}
		out = append(out, as)
	}
	return out, skip
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// Normalize brings v, a block body decoded as written (what a Config holds
// for an external plugin whose schemas were not asked for when the file
// was loaded, as `zhost run` loads it), into the form DecodeBody gives:
// defaults filled in, sizes as int64 bytes, durations as Go duration
// strings, relative paths resolved against baseDir, lists and maps typed.
// Values already in that form are unchanged, so applying it twice is
// harmless. A name the schema does not declare is an error, as DecodeBody
// reports it (a misspelt setting must not be dropped silently), unless it
// is one of host: names the host itself puts into the values (a storage's
// path and read_only), which are kept as they are. The error names every
// value that does not fit the schema.
func (s Schema) Normalize(v Values, baseDir string, host ...string) (Values, error) {
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("declared schema: %w", err)
	}
	out := make(Values, len(v))
	for k, x := range v {
		out[k] = x
	}
	resolve := (&decoder{baseDir: baseDir}).resolve
	var errs []error
	var names []string
	for _, a := range s.Attributes {
		names = append(names, a.Name)
	}
	known := "none is declared"
	if len(names) > 0 {
		known = "known: " + quoteList(names)
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		if s.Attribute(k) == nil && !contains(host, k) {
			errs = append(errs, fmt.Errorf("%s: unsupported (%s).%s", k, known, didYouMean(k, names)))
		}
	}
	for _, a := range s.Attributes {
		x, ok := v[a.Name]
		if !ok || x == nil {
			delete(out, a.Name)
			switch {
			case a.Required:
				errs = append(errs, fmt.Errorf("%s: required", a.Name))
			case a.Default != nil:
				d, _ := normalizeDefault(a) // Check passed
				if p, ok := d.(string); ok && a.Type == TypePath {
					d = resolve(p)
				}
				out[a.Name] = d
			}
			continue
		}
		n, err := normalizeValue(a, x, resolve)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Name, err))
			continue
		}
		out[a.Name] = n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// normalizeValue converts one value of attribute a, as written or as
// decoded, to its decoded form and checks its enum and bounds.
func normalizeValue(a Attribute, x any, resolve func(string) string) (any, error) {
	k, _ := kindOf(a.Type)
	var bound float64
	var out any
	switch a.Type {
	case TypeString:
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, have %T", x)
		}
		if len(a.Enum) > 0 && !contains(a.Enum, s) {
			return nil, fmt.Errorf("%q is not one of %s", s, quoteList(a.Enum))
		}
		return s, nil
	case TypePath:
		s, ok := x.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("want a non-empty path, have %#v", x)
		}
		return resolve(s), nil
	case TypeBool:
		b, ok := x.(bool)
		if !ok {
			return nil, fmt.Errorf("want a bool, have %T", x)
		}
		return b, nil
	case TypeNumber:
		f, ok := toFloat(x)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("want a number, have %#v", x)
		}
		bound, out = f, f
	case TypeDuration:
		var d time.Duration
		switch y := x.(type) {
		case time.Duration:
			d = y
		case string:
			var err error
			if d, err = ParseDuration(y); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("want a duration like \"20m\", have %T", x)
		}
		bound, out = float64(d), d.String()
	case TypeSize:
		var n int64
		switch y := x.(type) {
		case string:
			var err error
			if n, err = ParseSize(y); err != nil {
				return nil, err
			}
		case int64:
			n = y
		default:
			f, ok := toFloat(x)
			if !ok || f < 0 || f != math.Trunc(f) || f >= math.MaxInt64 {
				return nil, fmt.Errorf("want a size like \"64MiB\", have %#v", x)
			}
			n = int64(f)
		}
		if n < 0 {
			return nil, fmt.Errorf("negative size %d", n)
		}
		bound, out = float64(n), n
	case TypeStringList:
		switch y := x.(type) {
		case []string:
			return y, nil
		case []any:
			l := make([]string, len(y))
			for i, e := range y {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("element %d: want a string, have %T", i, e)
				}
				l[i] = s
			}
			return l, nil
		}
		return nil, fmt.Errorf("want a list of strings, have %T", x)
	case TypeStringMap:
		switch y := x.(type) {
		case map[string]string:
			return y, nil
		case map[string]any:
			m := make(map[string]string, len(y))
			for key, e := range y {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("key %q: want a string, have %T", key, e)
				}
				m[key] = s
			}
			return m, nil
		}
		return nil, fmt.Errorf("want a map of strings, have %T", x)
	default:
		return x, nil
	}
	if side, limit, ok := outOfBounds(k, a.Min, a.Max, bound); ok {
		return nil, fmt.Errorf("must be at %s %s", side, limit)
	}
	return out, nil
}

// outOfBounds reports whether v lies outside min and max (written for
// kind k; empty: no bound), and which: side "least" with min, or "most"
// with max.
func outOfBounds(k kind, min, max string, v float64) (side, limit string, out bool) {
	if min != "" {
		if lo, err := parseBound(k, min); err == nil && v < lo {
			return "least", min, true
		}
	}
	if max != "" {
		if hi, err := parseBound(k, max); err == nil && v > hi {
			return "most", max, true
		}
	}
	return "", "", false
}
