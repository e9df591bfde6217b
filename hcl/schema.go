package hcl

// AttrType is the type of an attribute in a Schema. Durations and sizes are
// written as strings in cluster.hcl ("20m", "64MiB") and checked at
// validate time.
type AttrType string

// Attribute types a backend or plugin may declare.
const (
	TypeString     AttrType = "string"
	TypeNumber     AttrType = "number"
	TypeBool       AttrType = "bool"
	TypeDuration   AttrType = "duration"     // "20m"; decoded as a Go duration string ("20m0s")
	TypeSize       AttrType = "size"         // "64MiB"; decoded as int64 bytes
	TypePath       AttrType = "path"         // relative to the config file; decoded as an absolute path
	TypeStringList AttrType = "list(string)" // decoded as []string
	TypeStringMap  AttrType = "map(string)"  // decoded as map[string]string
)

// Attribute declares one attribute of a block body.
type Attribute struct {
	Name     string
	Type     AttrType
	Required bool
	// Default is used when the attribute is absent; it has the decoded
	// Go type of Type (see Values).
	Default any
	// Enum lists the values a TypeString attribute may take; empty means
	// any string.
	Enum []string
	// Min and Max bound a TypeNumber, TypeDuration or TypeSize attribute,
	// written like a value in cluster.hcl ("0", "1s", "1MiB"); empty means
	// unbounded.
	Min, Max    string
	Description string
}

// Schema is the config schema a storage type or plugin declares for the
// body of its block. The host decodes the block with it, so a mistake in a
// plugin's settings is reported at its line and column by `zhost validate`.
type Schema struct {
	Attributes []Attribute
}

// Attribute returns the attribute named name, or nil.
func (s Schema) Attribute(name string) *Attribute {
	for i := range s.Attributes {
		if s.Attributes[i].Name == name {
			return &s.Attributes[i]
		}
	}
	return nil
}

// Values is a block body decoded with a Schema. Values are JSON-compatible
// so they cross the plugin boundary unchanged: string, bool, float64
// (number), int64 (size), string (duration, in Go's time.Duration.String
// form; path, absolute), []string, map[string]string. Absent attributes
// without a default are absent from the map.
type Values map[string]any
