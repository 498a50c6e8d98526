package main

import (
	"encoding/json"
	"io"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// JSON output: one object per command, keys in snake_case (the proto field
// names), every field present, numbers as JSON numbers. protojson's default
// writes 64-bit integers as strings and keys in lowerCamelCase, which a
// script reading `"examples": "160"` must not have to undo.

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// protoObject converts a message to a JSON-ready map, see above.
func protoObject(m proto.Message) map[string]any {
	if m == nil {
		return nil
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return nil
	}
	return messageObject(r)
}

func protoList[T proto.Message](ms []T) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = protoObject(m)
	}
	return out
}

func messageObject(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !m.Has(fd) {
			continue
		}
		name := string(fd.Name())
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			arr := make([]any, l.Len())
			for j := range arr {
				arr[j] = scalarValue(fd, l.Get(j))
			}
			out[name] = arr
		case fd.IsMap():
			obj := map[string]any{}
			v.Map().Range(func(k protoreflect.MapKey, val protoreflect.Value) bool {
				obj[k.String()] = scalarValue(fd.MapValue(), val)
				return true
			})
			out[name] = obj
		case fd.Message() != nil && !m.Has(fd):
			out[name] = nil
		default:
			out[name] = scalarValue(fd, v)
		}
	}
	return out
}

func scalarValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageObject(v.Message())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return int32(v.Enum())
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return v.Bytes()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	}
	return nil
}
