package sdk

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
)

// CheckArgs checks a mount block's args (JSON-compatible, as a
// MountFunction receives them) against the function's declared schema:
// every required arg present, no unknown names, each value of its declared
// type. The error lists every problem at once and wraps storage.ErrInvalid.
// Serve calls it before every Resolve, so a function need not repeat it.
func CheckArgs(schema hcl.Schema, args map[string]any) error {
	var problems []string
	known := map[string]bool{}
	for _, a := range schema.Attributes {
		known[a.Name] = true
		v, ok := args[a.Name]
		if !ok || v == nil {
			if a.Required {
				problems = append(problems, fmt.Sprintf("missing required arg %q", a.Name))
			}
			continue
		}
		if msg := checkType(a.Type, v); msg != "" {
			problems = append(problems, fmt.Sprintf("arg %q: %s", a.Name, msg))
		}
	}
	var unknown []string
	for k := range args {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		names := make([]string, 0, len(schema.Attributes))
		for _, a := range schema.Attributes {
			names = append(names, a.Name)
		}
		problems = append(problems, fmt.Sprintf("unknown arg %q (expected one of: %s)", k, strings.Join(names, ", ")))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", strings.Join(problems, "; "), storage.ErrInvalid)
}

func checkType(t hcl.AttrType, v any) string {
	switch t {
	case hcl.TypeString, hcl.TypePath:
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("want a string, got %s", jsonType(v))
		}
	case hcl.TypeNumber:
		if _, ok := v.(float64); !ok {
			return fmt.Sprintf("want a number, got %s", jsonType(v))
		}
	case hcl.TypeBool:
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("want a bool, got %s", jsonType(v))
		}
	case hcl.TypeDuration:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("want a duration string like \"20m\", got %s", jsonType(v))
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Sprintf("want a duration like \"20m\": %v", err)
		}
	case hcl.TypeSize:
		switch v.(type) {
		case string, float64:
		default:
			return fmt.Sprintf("want a size like \"64MiB\", got %s", jsonType(v))
		}
	case hcl.TypeStringList:
		l, ok := v.([]any)
		if !ok {
			return fmt.Sprintf("want a list of strings, got %s", jsonType(v))
		}
		for i, e := range l {
			if _, ok := e.(string); !ok {
				return fmt.Sprintf("element %d: want a string, got %s", i, jsonType(e))
			}
		}
	case hcl.TypeStringMap:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Sprintf("want a map of strings, got %s", jsonType(v))
		}
		for k, e := range m {
			if _, ok := e.(string); !ok {
				return fmt.Sprintf("key %q: want a string, got %s", k, jsonType(e))
			}
		}
	}
	return ""
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a bool"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
