package hcl

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// decoder turns bodies into blockData by a blockSpec, collecting every
// problem as a diagnostic rather than stopping at the first.
type decoder struct {
	baseDir string
	diags   hcl2.Diagnostics
}

// attrVal is one decoded attribute.
type attrVal struct {
	value   any
	rng     hcl2.Range // the value expression
	nameRng hcl2.Range
	expr    hcl2.Expression
	set     bool // written in the file (else defaulted)
	bad     bool // written but invalid; already reported
}

// blockData is one decoded block.
type blockData struct {
	typ      string
	label    string
	labelRng hcl2.Range
	defRng   hcl2.Range
	attrs    map[string]*attrVal
	blocks   map[string][]*blockData
	remain   hcl2.Body
}

// ref is a decoded traversal such as storage.main.
type ref struct {
	kind, name string
	rng        hcl2.Range
}

// objEntry is one key of a decoded object (mount args).
type objEntry struct {
	key    string
	keyRng hcl2.Range
	valRng hcl2.Range
	value  any
	expr   hcl2.Expression
}

// pluginRef is a decoded mount plugin attribute.
type pluginRef struct {
	builtin bool
	name    string // plugin block name
	path    string // or a binary path
	rng     hcl2.Range
}

func (d *decoder) errorf(subject hcl2.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl2.Diagnostic{
		Severity: hcl2.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

func (d *decoder) warnf(subject hcl2.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl2.Diagnostic{
		Severity: hcl2.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

func bodySchema(bs *blockSpec) *hcl2.BodySchema {
	s := &hcl2.BodySchema{}
	for _, a := range bs.Attrs {
		s.Attributes = append(s.Attributes, hcl2.AttributeSchema{Name: a.Name})
	}
	for _, b := range bs.Blocks {
		var labels []string
		if b.Label != "" {
			labels = []string{b.Label}
		}
		s.Blocks = append(s.Blocks, hcl2.BlockHeaderSchema{Type: b.Name, LabelNames: labels})
	}
	return s
}

// decodeBody decodes body by bs. defRng is the block header, where a
// missing required attribute is reported; what names the block in
// messages ("storage \"main\"").
func (d *decoder) decodeBody(bs *blockSpec, body hcl2.Body, defRng hcl2.Range, what string) *blockData {
	bd := &blockData{typ: bs.Name, defRng: defRng, attrs: map[string]*attrVal{}, blocks: map[string][]*blockData{}}
	var content *hcl2.BodyContent
	var diags hcl2.Diagnostics
	if bs.Open {
		content, bd.remain, diags = body.PartialContent(bodySchema(bs))
	} else {
		content, diags = body.Content(bodySchema(bs))
	}
	d.diags = append(d.diags, diags...)
	if content == nil {
		return bd
	}
	for i := range bs.Attrs {
		a := &bs.Attrs[i]
		if at, ok := content.Attributes[a.Name]; ok {
			av := &attrVal{rng: at.Expr.Range(), nameRng: at.NameRange, expr: at.Expr, set: true}
			if a.Kind == kAny {
				bd.attrs[a.Name] = av
				continue
			}
			v, ok, null := d.decodeExpr(a, at.Expr)
			if ok && !null {
				av.value = v
				bd.attrs[a.Name] = av
				continue
			}
			if !ok {
				av.bad = true
				bd.attrs[a.Name] = av
				continue
			}
			// An explicit null is the same as leaving the attribute out.
		}
		if a.Required {
			in := ""
			if what != "" {
				in = " in " + what
			}
			d.errorf(defRng, "Missing required argument", "The argument %q is required%s.", a.Name, in)
			continue
		}
		if v, ok := d.defaultOf(a); ok {
			bd.attrs[a.Name] = &attrVal{value: v, rng: defRng}
		}
	}
	for _, cs := range bs.Blocks {
		blocks := content.Blocks.OfType(cs.Name)
		for i, b := range blocks {
			if !cs.Many && i > 0 {
				first := blocks[0].DefRange
				d.errorf(b.DefRange, "Duplicate "+cs.Name+" block",
					"Only one %s block is allowed%s; the first one is at %s.", cs.Name, inWhat(what), first)
				continue
			}
			child := what
			if cs.Label != "" && len(b.Labels) > 0 {
				child = fmt.Sprintf("%s %q", cs.Name, b.Labels[0])
			} else if what == "" {
				child = cs.Name
			} else {
				child = cs.Name + " in " + what
			}
			cd := d.decodeBody(cs, b.Body, b.DefRange, child)
			if len(b.Labels) > 0 {
				cd.label = b.Labels[0]
				cd.labelRng = b.LabelRanges[0]
			}
			bd.blocks[cs.Name] = append(bd.blocks[cs.Name], cd)
		}
	}
	return bd
}

func inWhat(what string) string {
	if what == "" {
		return " per file"
	}
	return " in " + what
}

// defaultExprs caches parsed default expressions by their text; parsed
// expressions are immutable, so they are shared between goroutines.
var defaultExprs sync.Map

// defaultOf decodes a's default; false when it has none.
func (d *decoder) defaultOf(a *attrSpec) (any, bool) {
	if a.hasDefault {
		if s, ok := a.defaultValue.(string); ok && a.Kind == kPath {
			// A declared default path is relative to the config file
			// like a written one.
			return d.resolve(s), true
		}
		return a.defaultValue, true
	}
	if a.Default == "" {
		return nil, false
	}
	var expr hcl2.Expression
	if e, ok := defaultExprs.Load(a.Default); ok {
		expr = e.(hcl2.Expression)
	} else {
		e, diags := hclsyntax.ParseExpression([]byte(a.Default), "<default>", hcl2.InitialPos)
		if diags.HasErrors() {
			return nil, false
		}
		defaultExprs.Store(a.Default, e)
		expr = e
	}
	sub := &decoder{baseDir: d.baseDir}
	v, ok, null := sub.decodeExpr(a, expr)
	if !ok || null {
		return nil, false
	}
	return v, true
}

// decodeExpr decodes one attribute expression. ok is false after an
// error diagnostic; null reports an explicit null.
func (d *decoder) decodeExpr(a *attrSpec, expr hcl2.Expression) (v any, ok, null bool) {
	rng := expr.Range()
	switch a.Kind {
	case kRef:
		r, ok := d.decodeRef(a, expr)
		return r, ok, false
	case kRefList:
		items, diags := hcl2.ExprList(expr)
		if diags.HasErrors() {
			d.errorf(rng, "Invalid reference list", "The %s argument is a list of references, like [%s.NAME1, %s.NAME2].", a.Name, a.Ref, a.Ref)
			return nil, false, false
		}
		var out []ref
		good := true
		for _, it := range items {
			r, ok := d.decodeRef(a, it)
			if !ok {
				good = false
				continue
			}
			out = append(out, r)
		}
		return out, good, false
	case kPluginRef:
		return d.decodePluginRef(expr)
	case kObject:
		return d.decodeObject(a, expr)
	case kCIDRList:
		items, diags := hcl2.ExprList(expr)
		if diags.HasErrors() {
			d.errorf(rng, "Invalid value", "The %s argument is a list of strings, like [\"10.0.0.0/8\", \"192.168.1.5\"].", a.Name)
			return nil, false, false
		}
		out := []string{}
		good := true
		for _, it := range items {
			val, ok := d.evalAs(a, it, cty.String)
			if !ok || val.IsNull() {
				if ok {
					d.errorf(it.Range(), "Invalid value", "The %s list cannot hold null.", a.Name)
				}
				good = false
				continue
			}
			s := val.AsString()
			if _, err := netip.ParsePrefix(s); err != nil {
				if _, err := netip.ParseAddr(s); err != nil {
					d.errorf(it.Range(), "Invalid address prefix", "%q is neither an IP address nor a CIDR prefix like \"10.0.0.0/8\".", s)
					good = false
					continue
				}
			}
			out = append(out, s)
		}
		return out, good, false
	}

	var want cty.Type
	switch a.Kind {
	case kNumber, kInt:
		want = cty.Number
	case kBool:
		want = cty.Bool
	case kStringList:
		want = cty.List(cty.String)
	case kStringMap:
		want = cty.Map(cty.String)
	case kSize:
		want = cty.DynamicPseudoType
	default:
		want = cty.String
	}
	val, ok := d.evalAs(a, expr, want)
	if !ok {
		return nil, false, false
	}
	if val.IsNull() {
		return nil, true, true
	}
	switch a.Kind {
	case kBool:
		return val.True(), true, false
	case kNumber, kInt:
		bf := val.AsBigFloat()
		f, _ := bf.Float64()
		if a.Kind == kInt {
			if !bf.IsInt() || math.Abs(f) > 1<<53 {
				d.errorf(rng, "Invalid value", "The %s argument must be a whole number.", a.Name)
				return nil, false, false
			}
			i, _ := bf.Int64()
			if !d.inBounds(a, float64(i), rng, strconv.FormatInt(i, 10)) {
				return nil, false, false
			}
			return i, true, false
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			d.errorf(rng, "Invalid value", "The %s argument is out of range.", a.Name)
			return nil, false, false
		}
		if !d.inBounds(a, f, rng, strconv.FormatFloat(f, 'g', -1, 64)) {
			return nil, false, false
		}
		return f, true, false
	case kStringList:
		out := []string{}
		for it := val.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() {
				d.errorf(rng, "Invalid value", "The %s list cannot hold null.", a.Name)
				return nil, false, false
			}
			out = append(out, e.AsString())
		}
		return out, true, false
	case kStringMap:
		out := map[string]string{}
		for it := val.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if e.IsNull() {
				d.errorf(rng, "Invalid value", "The %s map cannot hold null.", a.Name)
				return nil, false, false
			}
			out[k.AsString()] = e.AsString()
		}
		return out, true, false
	case kSize:
		return d.decodeSize(a, val, rng)
	}

	s := val.AsString()
	switch a.Kind {
	case kString:
		if len(a.Enum) > 0 && !contains(a.Enum, s) {
			d.diags = append(d.diags, &hcl2.Diagnostic{
				Severity: hcl2.DiagError,
				Summary:  "Unsupported value",
				Detail:   fmt.Sprintf("The %s argument must be one of %s; %q is not.%s", a.Name, quoteList(a.Enum), s, didYouMean(s, a.Enum)),
				Subject:  rng.Ptr(),
			})
			return nil, false, false
		}
		return s, true, false
	case kDuration:
		dur, err := ParseDuration(s)
		if err != nil {
			d.errorf(rng, "Invalid duration", "The %s argument: %v.", a.Name, err)
			return nil, false, false
		}
		if !d.inBounds(a, float64(dur), rng, FormatDuration(dur)) {
			return nil, false, false
		}
		return dur, true, false
	case kPath:
		if s == "" || strings.ContainsRune(s, 0) {
			d.errorf(rng, "Invalid path", "The %s argument must be a non-empty file path.", a.Name)
			return nil, false, false
		}
		return d.resolve(s), true, false
	case kAddress:
		if err := checkAddress(s); err != nil {
			d.errorf(rng, "Invalid address", "The %s argument: %v.", a.Name, err)
			return nil, false, false
		}
		return s, true, false
	case kHost:
		if err := checkHost(s); err != nil {
			d.errorf(rng, "Invalid host", "The %s argument: %v.", a.Name, err)
			return nil, false, false
		}
		return s, true, false
	case kURL:
		if err := checkURL(s); err != nil {
			d.errorf(rng, "Invalid URL", "The %s argument: %v.", a.Name, err)
			return nil, false, false
		}
		return s, true, false
	case kSHA256:
		ls := strings.ToLower(s)
		if len(ls) != 64 || strings.Trim(ls, "0123456789abcdef") != "" {
			d.errorf(rng, "Invalid checksum", "The %s argument must be 64 hexadecimal digits (the output of sha256sum); %q is not.", a.Name, s)
			return nil, false, false
		}
		return ls, true, false
	}
	return s, true, false
}

// evalAs evaluates expr without variables or functions and converts it to
// want, reporting a type error at the expression.
func (d *decoder) evalAs(a *attrSpec, expr hcl2.Expression, want cty.Type) (cty.Value, bool) {
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return cty.NilVal, false
	}
	if val.IsNull() {
		return val, true
	}
	if !val.IsWhollyKnown() {
		d.errorf(expr.Range(), "Invalid value", "The %s argument must be a constant.", a.Name)
		return cty.NilVal, false
	}
	if want == cty.DynamicPseudoType {
		return val, true
	}
	conv, err := convert.Convert(val, want)
	if err != nil {
		d.errorf(expr.Range(), "Incorrect attribute value type", "The %s argument must be a %s: %v.", a.Name, kindName(a.Kind), err)
		return cty.NilVal, false
	}
	return conv, true
}

func (d *decoder) decodeSize(a *attrSpec, val cty.Value, rng hcl2.Range) (any, bool, bool) {
	var n int64
	switch val.Type() {
	case cty.Number:
		bf := val.AsBigFloat()
		if !bf.IsInt() || bf.Sign() < 0 || bf.Cmp(big.NewFloat(math.MaxInt64)) >= 0 {
			d.errorf(rng, "Invalid size", "The %s argument must be a whole number of bytes or a string like \"64MiB\".", a.Name)
			return nil, false, false
		}
		n, _ = bf.Int64()
	case cty.String:
		var err error
		n, err = ParseSize(val.AsString())
		if err != nil {
			d.errorf(rng, "Invalid size", "The %s argument: %v.", a.Name, err)
			return nil, false, false
		}
	default:
		d.errorf(rng, "Invalid size", "The %s argument must be a string like \"64MiB\".", a.Name)
		return nil, false, false
	}
	if !d.inBounds(a, float64(n), rng, FormatSize(n)) {
		return nil, false, false
	}
	return n, true, false
}

// inBounds checks a's Min and Max; shown is the value as the message
// writes it.
func (d *decoder) inBounds(a *attrSpec, v float64, rng hcl2.Range, shown string) bool {
	side, limit, out := outOfBounds(a.Kind, a.Min, a.Max, v)
	if out {
		than := "less"
		if side == "most" {
			than = "more"
		}
		d.errorf(rng, "Value out of range", "The %s argument must be at %s %s; %s is %s.", a.Name, side, limit, shown, than)
	}
	return !out
}

func (d *decoder) resolve(p string) string {
	if d.baseDir == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.baseDir, p)
}

// decodeRef decodes a traversal to a block of type a.Ref.
func (d *decoder) decodeRef(a *attrSpec, expr hcl2.Expression) (ref, bool) {
	rng := expr.Range()
	trav, diags := hcl2.AbsTraversalForExpr(expr)
	if diags.HasErrors() {
		hint := ""
		if v, vd := expr.Value(nil); !vd.HasErrors() && v.Type() == cty.String && !v.IsNull() && hclsyntax.ValidIdentifier(v.AsString()) {
			hint = fmt.Sprintf(" References are written without quotes: %s.%s.", a.Ref, v.AsString())
		}
		d.errorf(rng, "Invalid reference", "The %s argument must be a reference to a %s block, like %s.NAME.%s", a.Name, a.Ref, a.Ref, hint)
		return ref{}, false
	}
	if trav.RootName() != a.Ref || len(trav) != 2 {
		d.errorf(trav.SourceRange(), "Invalid reference", "The %s argument must be a reference to a %s block, like %s.NAME; %s is not.", a.Name, a.Ref, a.Ref, travString(trav))
		return ref{}, false
	}
	step, ok := trav[1].(hcl2.TraverseAttr)
	if !ok {
		d.errorf(trav.SourceRange(), "Invalid reference", "Write %s.NAME, with the name as an attribute, not an index.", a.Ref)
		return ref{}, false
	}
	return ref{kind: a.Ref, name: step.Name, rng: trav.SourceRange()}, true
}

// decodePluginRef decodes mount.plugin: "builtin", a plugin name,
// plugin.NAME (or "plugin.NAME" in JSON) or a binary path.
func (d *decoder) decodePluginRef(expr hcl2.Expression) (any, bool, bool) {
	rng := expr.Range()
	if v, diags := expr.Value(nil); !diags.HasErrors() && v.IsWhollyKnown() {
		if v.IsNull() {
			return nil, true, true
		}
		if v.Type() != cty.String {
			d.errorf(rng, "Invalid plugin", "The plugin argument is \"builtin\", the name of a plugin block, plugin.NAME, or the path of a plugin binary.")
			return nil, false, false
		}
		s := v.AsString()
		switch {
		case s == "builtin":
			return pluginRef{builtin: true, rng: rng}, true, false
		case strings.ContainsAny(s, `/\`):
			return pluginRef{path: d.resolve(s), rng: rng}, true, false
		case strings.HasPrefix(s, "plugin.") && hclsyntax.ValidIdentifier(s[len("plugin."):]):
			return pluginRef{name: s[len("plugin."):], rng: rng}, true, false
		case hclsyntax.ValidIdentifier(s):
			return pluginRef{name: s, rng: rng}, true, false
		}
		d.errorf(rng, "Invalid plugin", "%q is not \"builtin\", a plugin name or a path.", s)
		return nil, false, false
	}
	r, ok := d.decodeRef(&attrSpec{Name: "plugin", Ref: "plugin"}, expr)
	if !ok {
		return nil, false, false
	}
	return pluginRef{name: r.name, rng: r.rng}, true, false
}

// decodeObject decodes an object of JSON-compatible values, keeping each
// key's range.
func (d *decoder) decodeObject(a *attrSpec, expr hcl2.Expression) (any, bool, bool) {
	rng := expr.Range()
	if v, diags := expr.Value(nil); !diags.HasErrors() && v.IsNull() {
		return nil, true, true
	}
	pairs, diags := hcl2.ExprMap(expr)
	if diags.HasErrors() {
		d.errorf(rng, "Invalid value", "The %s argument must be an object, like { key = \"value\" }.", a.Name)
		return nil, false, false
	}
	var out []objEntry
	seen := map[string]hcl2.Range{}
	good := true
	for _, p := range pairs {
		kv, kd := p.Key.Value(nil)
		if kd.HasErrors() {
			d.diags = append(d.diags, kd...)
			good = false
			continue
		}
		kv, err := convert.Convert(kv, cty.String)
		if err != nil || kv.IsNull() || !kv.IsWhollyKnown() {
			d.errorf(p.Key.Range(), "Invalid key", "Keys of %s must be strings.", a.Name)
			good = false
			continue
		}
		key := kv.AsString()
		if first, dup := seen[key]; dup {
			d.errorf(p.Key.Range(), "Duplicate key", "The key %q of %s is already set at %s.", key, a.Name, first)
			good = false
			continue
		}
		seen[key] = p.Key.Range()
		val, vd := p.Value.Value(nil)
		if vd.HasErrors() {
			d.diags = append(d.diags, vd...)
			good = false
			continue
		}
		g, err := ctyToGo(val)
		if err != nil {
			d.errorf(p.Value.Range(), "Invalid value", "The value of %s.%s must be JSON-compatible: %v.", a.Name, key, err)
			good = false
			continue
		}
		out = append(out, objEntry{key: key, keyRng: p.Key.Range(), valRng: p.Value.Range(), value: g, expr: p.Value})
	}
	if out == nil {
		out = []objEntry{}
	}
	return out, good, false
}

// ctyToGo converts a known value to JSON-compatible Go values.
func ctyToGo(v cty.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("value is not known")
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return out, nil
}

func travString(t hcl2.Traversal) string {
	var b strings.Builder
	for i, s := range t {
		switch s := s.(type) {
		case hcl2.TraverseRoot:
			b.WriteString(s.Name)
		case hcl2.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl2.TraverseIndex:
			b.WriteString("[...]")
		default:
			if i > 0 {
				b.WriteString(".?")
			}
		}
	}
	return b.String()
}

func kindName(k kind) string {
	switch k {
	case kString:
		return "string"
	case kNumber:
		return "number"
	case kInt:
		return "whole number"
	case kBool:
		return "bool"
	case kDuration:
		return "duration"
	case kSize:
		return "size"
	case kPath:
		return "path"
	case kAddress:
		return "address"
	case kHost:
		return "host"
	case kURL:
		return "URL"
	case kRef:
		return "reference"
	case kRefList:
		return "list of references"
	case kStringList:
		return "list(string)"
	case kStringMap:
		return "map(string)"
	case kObject:
		return "object"
	case kSHA256:
		return "sha256"
	case kCIDRList:
		return "list(string)"
	case kPluginRef:
		return "string or reference"
	}
	return "value"
}

// checkAddress checks a "host:port" address. An empty host means every
// interface; the port may be 0 (chosen at start).
func checkAddress(s string) error {
	host, port, err := splitHostPort(s)
	if err != nil {
		return err
	}
	if host != "" {
		if err := checkHost(host); err != nil {
			return err
		}
	}
	_ = port
	return nil
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q has no port (write host:port, e.g. \"127.0.0.1:9100\")", s)
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, fmt.Errorf("%q: %q is not an IPv6 address", s, host)
		}
	} else if strings.Contains(host, ":") {
		return "", 0, fmt.Errorf("%q: write an IPv6 host in brackets, like \"[::1]:9100\"", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || port == "" || port[0] == '+' {
		return "", 0, fmt.Errorf("%q: the port must be a number from 0 to 65535", s)
	}
	return host, p, nil
}

// checkHost checks a host name or IP address.
func checkHost(h string) error {
	if h == "" {
		return fmt.Errorf("empty host")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host name %q is too long", h)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a valid host name or IP address", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a valid host name or IP address", h)
			}
		}
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must start with http:// or https://", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.Port() != "" {
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%q has an invalid port", s)
		}
	}
	if err := checkHost(u.Hostname()); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// didYouMean suggests the closest of names to s, or returns "".
func didYouMean(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if dist := editDistance(strings.ToLower(s), strings.ToLower(n)); dist < bestD {
			best, bestD = n, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
