package sdk

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// Conversions between the storage and hcl types and their protobuf form.
// They are total: every Go value has a protobuf form and back, so nothing
// here can fail on a record or a transaction.

func recordToPB(r storage.Record) *pb.Record {
	return &pb.Record{
		Oid:     uint64(r.Oid),
		Serial:  uint64(r.Serial),
		Data:    r.Data,
		DataNil: r.Data == nil,
		Refs:    oidsToPB(r.Refs),
	}
}

func recordFromPB(r *pb.Record) storage.Record {
	if r == nil {
		return storage.Record{}
	}
	rec := storage.Record{
		Oid:    storage.Oid(r.GetOid()),
		Serial: storage.Tid(r.GetSerial()),
		Refs:   oidsFromPB(r.GetRefs()),
	}
	if !r.GetDataNil() {
		rec.Data = r.GetData()
		if rec.Data == nil {
			rec.Data = []byte{}
		}
	}
	return rec
}

func recordsToPB(rs []storage.Record) []*pb.Record {
	out := make([]*pb.Record, len(rs))
	for i, r := range rs {
		out[i] = recordToPB(r)
	}
	return out
}

func recordsFromPB(rs []*pb.Record) []storage.Record {
	if rs == nil {
		return nil
	}
	out := make([]storage.Record, len(rs))
	for i, r := range rs {
		out[i] = recordFromPB(r)
	}
	return out
}

func oidsToPB(oids []storage.Oid) []uint64 {
	if oids == nil {
		return nil
	}
	out := make([]uint64, len(oids))
	for i, o := range oids {
		out[i] = uint64(o)
	}
	return out
}

func oidsFromPB(oids []uint64) []storage.Oid {
	if oids == nil {
		return nil
	}
	out := make([]storage.Oid, len(oids))
	for i, o := range oids {
		out[i] = storage.Oid(o)
	}
	return out
}

func metaToPB(m storage.TxMeta) *pb.TxMeta {
	return &pb.TxMeta{User: m.User, Description: m.Description, Extension: m.Extension}
}

func metaFromPB(m *pb.TxMeta) storage.TxMeta {
	if m == nil {
		return storage.TxMeta{}
	}
	meta := storage.TxMeta{User: m.GetUser(), Description: m.GetDescription()}
	if len(m.GetExtension()) > 0 {
		meta.Extension = m.GetExtension()
	}
	return meta
}

func infoToPB(i storage.TxInfo) *pb.TxInfo {
	return &pb.TxInfo{Tid: uint64(i.Tid), Meta: metaToPB(i.TxMeta), Oids: oidsToPB(i.Oids)}
}

func infoFromPB(i *pb.TxInfo) storage.TxInfo {
	if i == nil {
		return storage.TxInfo{}
	}
	return storage.TxInfo{Tid: storage.Tid(i.GetTid()), TxMeta: metaFromPB(i.GetMeta()), Oids: oidsFromPB(i.GetOids())}
}

func capsToPB(c storage.Capabilities) *pb.Capabilities {
	return &pb.Capabilities{History: c.History, Undo: c.Undo, Pack: c.Pack, ReadOnly: c.ReadOnly}
}

func capsFromPB(c *pb.Capabilities) storage.Capabilities {
	return storage.Capabilities{History: c.GetHistory(), Undo: c.GetUndo(), Pack: c.GetPack(), ReadOnly: c.GetReadOnly()}
}

// ValueToPB converts one decoded config value (see hcl.Values) to its
// protobuf form. Integer kinds other than int64 are accepted and sent as
// int64; anything else is an error naming the Go type.
func valueToPB(v any) (*pb.Value, error) {
	switch x := v.(type) {
	case string:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: x}}, nil
	case bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: x}}, nil
	case float64:
		return &pb.Value{Kind: &pb.Value_NumberValue{NumberValue: x}}, nil
	case float32:
		return &pb.Value{Kind: &pb.Value_NumberValue{NumberValue: float64(x)}}, nil
	case int64:
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: x}}, nil
	case int:
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: int64(x)}}, nil
	case int32:
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: int64(x)}}, nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("value %d overflows int64", x)
		}
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: int64(x)}}, nil
	case time.Duration:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: x.String()}}, nil
	case []string:
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: &pb.StringList{Values: x}}}, nil
	case map[string]string:
		return &pb.Value{Kind: &pb.Value_MapValue{MapValue: &pb.StringMap{Values: x}}}, nil
	default:
		return nil, fmt.Errorf("unsupported config value type %T", v)
	}
}

func valueFromPB(v *pb.Value) any {
	switch k := v.GetKind().(type) {
	case *pb.Value_StringValue:
		return k.StringValue
	case *pb.Value_BoolValue:
		return k.BoolValue
	case *pb.Value_NumberValue:
		return k.NumberValue
	case *pb.Value_IntValue:
		return k.IntValue
	case *pb.Value_ListValue:
		if k.ListValue.GetValues() == nil {
			return []string{}
		}
		return k.ListValue.GetValues()
	case *pb.Value_MapValue:
		if k.MapValue.GetValues() == nil {
			return map[string]string{}
		}
		return k.MapValue.GetValues()
	default:
		return nil
	}
}

func valuesToPB(vals hcl.Values) (map[string]*pb.Value, error) {
	out := make(map[string]*pb.Value, len(vals))
	for k, v := range vals {
		pv, err := valueToPB(v)
		if err != nil {
			return nil, fmt.Errorf("config attribute %q: %w", k, err)
		}
		out[k] = pv
	}
	return out, nil
}

func valuesFromPB(m map[string]*pb.Value) hcl.Values {
	out := make(hcl.Values, len(m))
	for k, v := range m {
		if x := valueFromPB(v); x != nil {
			out[k] = x
		}
	}
	return out
}

func schemaToPB(s hcl.Schema) (*pb.Schema, error) {
	out := &pb.Schema{}
	for _, a := range s.Attributes {
		pa := &pb.Attribute{Name: a.Name, Type: string(a.Type), Required: a.Required, Description: a.Description, Enum: a.Enum, Min: a.Min, Max: a.Max}
		if a.Default != nil {
			d, err := valueToPB(a.Default)
			if err != nil {
				return nil, fmt.Errorf("default of attribute %q: %w", a.Name, err)
			}
			pa.Default = d
		}
		out.Attributes = append(out.Attributes, pa)
	}
	return out, nil
}

func schemaFromPB(s *pb.Schema) hcl.Schema {
	var out hcl.Schema
	for _, a := range s.GetAttributes() {
		attr := hcl.Attribute{Name: a.GetName(), Type: hcl.AttrType(a.GetType()), Required: a.GetRequired(), Description: a.GetDescription(), Enum: a.GetEnum(), Min: a.GetMin(), Max: a.GetMax()}
		if a.GetDefault() != nil {
			attr.Default = valueFromPB(a.GetDefault())
		}
		out.Attributes = append(out.Attributes, attr)
	}
	return out
}

// jsonCompatible rewrites the Go types HCL decoding commonly yields
// ([]string, map[string]string, ints) into the JSON-compatible forms
// structpb accepts.
func jsonCompatible(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = c
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
}

func argsToPB(args map[string]any) (*structpb.Struct, error) {
	if args == nil {
		args = map[string]any{}
	}
	c, err := jsonCompatible(args)
	if err != nil {
		return nil, fmt.Errorf("mount args: %w", err)
	}
	s, err := structpb.NewStruct(c.(map[string]any))
	if err != nil {
		return nil, fmt.Errorf("mount args: %w", err)
	}
	return s, nil
}

// descriptionToPB and descriptionFromPB carry Describe.
func descriptionToPB(d Description) (*pb.Description, error) {
	out := &pb.Description{Name: d.Name, Version: d.Version, ProtocolVersion: int32(d.ProtocolVersion)}
	cs, err := schemaToPB(d.Config)
	if err != nil {
		return nil, fmt.Errorf("plugin config: %w", err)
	}
	out.Config = cs
	for _, b := range d.Backends {
		s, err := schemaToPB(b.Schema)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		out.Backends = append(out.Backends, &pb.BackendType{Name: b.Name, Description: b.Description, Schema: s})
	}
	for _, f := range d.Functions {
		s, err := schemaToPB(f.Args)
		if err != nil {
			return nil, fmt.Errorf("mount function %q: %w", f.Name, err)
		}
		out.Functions = append(out.Functions, &pb.MountFunction{Name: f.Name, Description: f.Description, Args: s})
	}
	return out, nil
}

func descriptionFromPB(d *pb.Description) Description {
	out := Description{Name: d.GetName(), Version: d.GetVersion(), ProtocolVersion: int(d.GetProtocolVersion()), Config: schemaFromPB(d.GetConfig())}
	for _, b := range d.GetBackends() {
		out.Backends = append(out.Backends, BackendInfo{Name: b.GetName(), Description: b.GetDescription(), Schema: schemaFromPB(b.GetSchema())})
	}
	for _, f := range d.GetFunctions() {
		out.Functions = append(out.Functions, FunctionInfo{Name: f.GetName(), Description: f.GetDescription(), Args: schemaFromPB(f.GetArgs())})
	}
	return out
}
