package hcl

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// ReferenceMarkdown returns the reference of the cluster.hcl language,
// every block and attribute with its type, default and an example, as the
// Markdown docs/config.md embeds (a test keeps the two in step).
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("### Top level\n\n")
	b.WriteString("Attributes outside any block.\n\n")
	writeAttrTable(&b, spec.Attrs)
	for _, bs := range spec.Blocks {
		writeBlock(&b, bs, "")
	}
	return b.String()
}

func writeBlock(b *strings.Builder, bs *blockSpec, parent string) {
	header := bs.Name
	if bs.Label != "" {
		header += ` "NAME"`
	}
	if parent != "" {
		fmt.Fprintf(b, "#### `%s` (in `%s`)\n\n", header, parent)
	} else {
		fmt.Fprintf(b, "### `%s`\n\n", header)
	}
	b.WriteString(bs.Description)
	switch {
	case bs.Many:
		b.WriteString(" Any number; names are unique.")
	case parent != "":
		b.WriteString(" Optional, at most one.")
	}
	b.WriteString("\n\n```hcl\n" + bs.Example + "\n```\n\n")
	writeAttrTable(b, bs.Attrs)
	for _, c := range bs.Blocks {
		writeBlock(b, c, bs.Name)
	}
}

func writeAttrTable(b *strings.Builder, attrs []attrSpec) {
	b.WriteString("| Attribute | Type | Default | Description | Example |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, a := range attrs {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | `%s` |\n",
			a.Name, docType(&a), docDefault(&a), cell(a.Description+docBounds(a.Min, a.Max)), cell(a.Example))
	}
	b.WriteString("\n")
}

func docType(a *attrSpec) string {
	var t string
	switch a.Kind {
	case kAddress:
		t = "address (`\"host:port\"`)"
	case kRef:
		t = fmt.Sprintf("reference (`%s.NAME`)", a.Ref)
	case kRefList:
		t = fmt.Sprintf("list of references (`%s.NAME`)", a.Ref)
	case kObject:
		t = "object"
	case kSHA256:
		t = "string (64 hex digits)"
	case kCIDRList:
		t = "list(string) of IPs or CIDR prefixes"
	case kPluginRef:
		t = "string or reference (`plugin.NAME`)"
	case kDuration:
		t = "duration (`\"20m\"`)"
	case kSize:
		t = "size (`\"64MiB\"`)"
	default:
		t = kindName(a.Kind)
	}
	if len(a.Enum) > 0 {
		t += ": one of " + cell(quoteList(a.Enum))
	}
	return t
}

func docDefault(a *attrSpec) string {
	switch {
	case a.Required:
		return "required"
	case a.Default != "":
		return "`" + cell(a.Default) + "`"
	case a.DefaultDoc != "":
		return cell(a.DefaultDoc)
	}
	return "none"
}

func docBounds(lo, hi string) string {
	switch {
	case lo != "" && hi != "":
		return fmt.Sprintf(" From %s to %s.", lo, hi)
	case lo != "":
		return fmt.Sprintf(" At least %s.", lo)
	case hi != "":
		return fmt.Sprintf(" At most %s.", hi)
	}
	return ""
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// SchemaMarkdown returns a declared Schema as a Markdown table (attribute,
// type, default, description), for the documentation of a storage type or
// plugin.
func SchemaMarkdown(s Schema) string {
	var b strings.Builder
	b.WriteString("| Attribute | Type | Default | Description |\n")
	b.WriteString("|---|---|---|---|\n")
	attrs := append([]Attribute(nil), s.Attributes...)
	sort.SliceStable(attrs, func(i, j int) bool { return attrs[i].Required && !attrs[j].Required })
	for _, a := range attrs {
		t := string(a.Type)
		if len(a.Enum) > 0 {
			t += ": one of " + cell(quoteList(a.Enum))
		}
		def := "none"
		switch {
		case a.Required:
			def = "required"
		case a.Default != nil:
			def = "`" + cell(schemaDefault(a)) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", a.Name, t, def, cell(a.Description+docBounds(a.Min, a.Max)))
	}
	return b.String()
}

// schemaDefault writes a declared default the way cluster.hcl would.
func schemaDefault(a Attribute) string {
	v, err := normalizeDefault(a)
	if err != nil {
		return fmt.Sprint(a.Default)
	}
	switch a.Type {
	case TypeDuration:
		d, _ := time.ParseDuration(v.(string))
		return fmt.Sprintf("%q", FormatDuration(d))
	case TypeSize:
		return fmt.Sprintf("%q", FormatSize(v.(int64)))
	case TypeString, TypePath:
		return fmt.Sprintf("%q", v)
	case TypeStringList:
		return fmt.Sprintf("[%s]", quoteList(v.([]string)))
	case TypeStringMap:
		m := v.(map[string]string)
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, fmt.Sprintf("%s = %q", k, m[k]))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return fmt.Sprint(v)
}
