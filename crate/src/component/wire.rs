//! The flat form of component values that the TypeScript layer decodes itself (lib/wire.ts):
//! one buffer per call instead of one N-API call per value, object and property, which was most
//! of the cost of returning a list of records or variants (see BENCHMARKING.md, issue 16).
//!
//! The form is driven by the value's type, so it carries no type tags (little-endian, unaligned):
//! - `bool`, `u8`, `s8`: one byte; `u16`, `s16`: two; `u32`, `s32`, `f32`, `char` (its code
//!   point): four; `u64`, `s64`, `f64`: eight.
//! - `string`: a u32 of its UTF-8 length, with the top bit set when it is not ASCII, then its bytes.
//! - `list`: a u32 count, then the elements (numbers as packed little-endian, as in a typed array).
//! - `record`, `tuple`: the members in order.
//! - `variant`, `enum`: a u32 case index, then the case's payload if it has one.
//! - `option`, `result`: a byte (`0` none / ok, `1` some / err), then the payload if there is one.
//! - `flags`: one byte per flag, in the type's order.
//!
//! Resources have no flat form: their values keep the per-value path.

use wasmtime::component::{Type, Val};

/// A value type reduced to what the flat form needs, made once per export (walking wasmtime's
/// [`Type`] clones shared type data at every step).
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Bool,
    U8,
    S8,
    U16,
    S16,
    U32,
    S32,
    U64,
    S64,
    F32,
    F64,
    Char,
    String,
    /// A list whose elements are numbers: packed like the typed array JS receives.
    Packed(Box<Shape>),
    List(Box<Shape>),
    Record(Vec<(String, Shape)>),
    Tuple(Vec<Shape>),
    Variant(Vec<(String, Option<Shape>)>),
    Enum(Vec<String>),
    Option(Box<Shape>),
    Result(Option<Box<Shape>>, Option<Box<Shape>>),
    Flags(Vec<String>),
}

impl Shape {
    /// The shape of `ty`, or `None` if a value of it can hold something without a flat form.
    pub fn of(ty: &Type) -> Option<Shape> {
        Some(match ty {
            Type::Bool => Shape::Bool,
            Type::U8 => Shape::U8,
            Type::S8 => Shape::S8,
            Type::U16 => Shape::U16,
            Type::S16 => Shape::S16,
            Type::U32 => Shape::U32,
            Type::S32 => Shape::S32,
            Type::U64 => Shape::U64,
            Type::S64 => Shape::S64,
            Type::Float32 => Shape::F32,
            Type::Float64 => Shape::F64,
            Type::Char => Shape::Char,
            Type::String => Shape::String,
            Type::List(list) => {
                let element = Shape::of(&list.ty())?;
                if element.width().is_some() && element != Shape::Bool && element != Shape::Char {
                    Shape::Packed(Box::new(element))
                } else {
                    Shape::List(Box::new(element))
                }
            }
            Type::Record(record) => Shape::Record(
                record
                    .fields()
                    .map(|field| Some((field.name.to_string(), Shape::of(&field.ty)?)))
                    .collect::<Option<_>>()?,
            ),
            Type::Tuple(tuple) => Shape::Tuple(tuple.types().map(|ty| Shape::of(&ty)).collect::<Option<_>>()?),
            Type::Variant(variant) => Shape::Variant(
                variant
                    .cases()
                    .map(|case| {
                        let payload = match &case.ty {
                            Some(ty) => Some(Shape::of(ty)?),
                            None => None,
                        };
                        Some((case.name.to_string(), payload))
                    })
                    .collect::<Option<_>>()?,
            ),
            Type::Enum(enumeration) => Shape::Enum(enumeration.names().map(str::to_string).collect()),
            Type::Option(option) => Shape::Option(Box::new(Shape::of(&option.ty())?)),
            Type::Result(result) => {
                let side = |ty: Option<Type>| match ty {
                    Some(ty) => Shape::of(&ty).map(|shape| Some(Box::new(shape))),
                    None => Some(None),
                };
                Shape::Result(side(result.ok())?, side(result.err())?)
            }
            Type::Flags(flags) => Shape::Flags(flags.names().map(str::to_string).collect()),
            _ => return None,
        })
    }

    /// The bytes of a fixed-width value (`None` for the others).
    fn width(&self) -> Option<usize> {
        Some(match self {
            Shape::Bool | Shape::U8 | Shape::S8 => 1,
            Shape::U16 | Shape::S16 => 2,
            Shape::U32 | Shape::S32 | Shape::F32 | Shape::Char => 4,
            Shape::U64 | Shape::S64 | Shape::F64 => 8,
            _ => return None,
        })
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let n = u32::try_from(n).map_err(|_| format!("a length of {n} has no flat form"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn index_of<'a>(names: impl Iterator<Item = &'a str>, name: &str) -> Result<usize, String> {
    names
        .into_iter()
        .position(|candidate| candidate == name)
        .ok_or_else(|| format!("case \"{name}\" is not in the type"))
}

/// Appends `value`, of shape `shape`, to `out`. Fails only on a value that does not match its
/// shape (wasmtime lifted it by the same type, so that is a bug, reported as such).
pub fn encode(value: &Val, shape: &Shape, out: &mut Vec<u8>) -> Result<(), String> {
    match (value, shape) {
        (Val::Bool(b), Shape::Bool) => out.push(u8::from(*b)),
        (Val::U8(n), Shape::U8) => out.push(*n),
        (Val::S8(n), Shape::S8) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::U16(n), Shape::U16) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::S16(n), Shape::S16) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::U32(n), Shape::U32) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::S32(n), Shape::S32) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::U64(n), Shape::U64) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::S64(n), Shape::S64) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::Float32(n), Shape::F32) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::Float64(n), Shape::F64) => out.extend_from_slice(&n.to_le_bytes()),
        (Val::Char(c), Shape::Char) => out.extend_from_slice(&u32::from(*c).to_le_bytes()),
        (Val::String(text), Shape::String) => {
            let header = u32::try_from(text.len())
                .ok()
                .filter(|&length| length < 1 << 31)
                .ok_or_else(|| format!("a string of {} bytes has no flat form", text.len()))?;
            let header = if text.is_ascii() { header } else { header | 1 << 31 };
            out.extend_from_slice(&header.to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        (Val::List(items), Shape::Packed(element)) => {
            put_u32(out, items.len())?;
            out.reserve(items.len() * element.width().unwrap_or(1));
            for item in items {
                encode(item, element, out)?;
            }
        }
        (Val::List(items), Shape::List(element)) => {
            put_u32(out, items.len())?;
            for item in items {
                encode(item, element, out)?;
            }
        }
        (Val::Record(fields), Shape::Record(shapes)) if fields.len() == shapes.len() => {
            for ((_, item), (_, shape)) in fields.iter().zip(shapes) {
                encode(item, shape, out)?;
            }
        }
        (Val::Tuple(items), Shape::Tuple(shapes)) if items.len() == shapes.len() => {
            for (item, shape) in items.iter().zip(shapes) {
                encode(item, shape, out)?;
            }
        }
        (Val::Variant(name, payload), Shape::Variant(cases)) => {
            let index = index_of(cases.iter().map(|(case, _)| case.as_str()), name)?;
            put_u32(out, index)?;
            encode_payload(payload.as_deref(), cases[index].1.as_ref(), out)?;
        }
        (Val::Enum(name), Shape::Enum(names)) => {
            put_u32(out, index_of(names.iter().map(String::as_str), name)?)?;
        }
        (Val::Option(inner), Shape::Option(shape)) => match inner {
            None => out.push(0),
            Some(inner) => {
                out.push(1);
                encode(inner, shape, out)?;
            }
        },
        (Val::Result(outcome), Shape::Result(ok, err)) => {
            let (tag, payload, shape) = match outcome {
                Ok(payload) => (0, payload, ok),
                Err(payload) => (1, payload, err),
            };
            out.push(tag);
            encode_payload(payload.as_deref(), shape.as_deref(), out)?;
        }
        (Val::Flags(set), Shape::Flags(names)) => {
            out.extend(names.iter().map(|name| u8::from(set.iter().any(|flag| flag == name))));
        }
        (value, shape) => return Err(format!("a value {value:?} does not have the shape {shape:?}")),
    }
    Ok(())
}

fn encode_payload(payload: Option<&Val>, shape: Option<&Shape>, out: &mut Vec<u8>) -> Result<(), String> {
    match (payload, shape) {
        (Some(payload), Some(shape)) => encode(payload, shape, out),
        (None, None) => Ok(()),
        _ => Err("a payload does not match its case".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::component::wire::{Shape, encode};
    use wasmtime::component::Val;

    fn encoded(value: &Val, shape: &Shape) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, shape, &mut out).expect("encodes");
        out
    }

    #[test]
    fn strings_carry_their_length_and_whether_they_are_ascii() {
        assert_eq!(
            encoded(&Val::String("ab".into()), &Shape::String),
            [2, 0, 0, 0, b'a', b'b']
        );
        assert_eq!(
            encoded(&Val::String("ü".into()), &Shape::String),
            [2, 0, 0, 0x80, 0xc3, 0xbc]
        );
    }

    #[test]
    fn cases_are_written_by_their_index_in_the_type() {
        let shape = Shape::Variant(vec![("a".into(), None), ("b".into(), Some(Shape::U8))]);
        let value = Val::Variant("b".into(), Some(Box::new(Val::U8(7))));
        assert_eq!(encoded(&value, &shape), [1, 0, 0, 0, 7]);
        let unknown = Val::Variant("c".into(), None);
        assert!(encode(&unknown, &shape, &mut Vec::new()).is_err());
    }

    #[test]
    fn a_value_of_another_shape_is_refused() {
        assert!(encode(&Val::U32(1), &Shape::S32, &mut Vec::new()).is_err());
        let payload_missing = Val::Result(Ok(None));
        let shape = Shape::Result(Some(Box::new(Shape::U8)), None);
        assert!(encode(&payload_missing, &shape, &mut Vec::new()).is_err());
    }

    #[test]
    fn numbers_are_little_endian_and_lists_count_their_elements() {
        let list = Val::List(vec![Val::U16(0x0102), Val::U16(0x0304)]);
        assert_eq!(
            encoded(&list, &Shape::Packed(Box::new(Shape::U16))),
            [2, 0, 0, 0, 2, 1, 4, 3]
        );
        let flags = Val::Flags(vec!["y".into()]);
        assert_eq!(encoded(&flags, &Shape::Flags(vec!["x".into(), "y".into()])), [0, 1]);
    }
}
