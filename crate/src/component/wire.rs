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
//!
//! Arguments come the other way in the same form (strings without the ASCII bit). They were
//! written by our own TypeScript, but [`decode`] still checks every length, index and string as
//! if they were hostile: a wrong buffer must be an error, never a panic or a huge allocation.

use super::footprint::Footprint;
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
    /// With the fewest bytes one element takes in guest memory (see [`Footprint`]).
    List(Box<Shape>, usize),
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
            Type::List(list) => Shape::List(
                Box::new(Shape::of(&list.ty())?),
                super::footprint::element_bytes(&list.ty()),
            ),
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
        (Val::List(items), Shape::List(element, _)) => {
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

/// Where [`decode`] reads: flat bytes and the position of the next value.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// What the values read so far need of the guest's memory (see [`Footprint`]).
    footprint: Footprint,
}

impl<'a> Reader<'a> {
    /// A reader of values bound for a guest whose memory limit is `guest_memory`.
    pub fn new(bytes: &'a [u8], guest_memory: usize) -> Self {
        Reader {
            bytes,
            at: 0,
            footprint: Footprint::new(guest_memory),
        }
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// Whether the values read needed more than the guest's memory limit.
    pub fn over_limit(&self) -> bool {
        self.footprint.over()
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.slice(N)?;
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    fn slice(&mut self, length: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(length).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("the flat form ends inside a value at byte {}", self.at))?;
        let bytes = &self.bytes[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    /// A count of values that each take at least one byte: never more than the bytes left, so a
    /// wrong count cannot size an allocation.
    fn count(&mut self) -> Result<usize, String> {
        let count = self.u32()? as usize;
        if count > self.bytes.len() - self.at {
            return Err(format!("a count of {count} is more than the flat form holds"));
        }
        Ok(count)
    }

    fn index(&mut self, length: usize) -> Result<usize, String> {
        let index = self.u32()? as usize;
        if index >= length {
            return Err(format!("case index {index} of {length}"));
        }
        Ok(index)
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("a flag byte of {other}")),
        }
    }
}

/// Reads one value of shape `shape`.
pub fn decode(shape: &Shape, reader: &mut Reader<'_>) -> Result<Val, String> {
    Ok(match shape {
        Shape::Bool => Val::Bool(reader.flag()?),
        Shape::U8 => Val::U8(reader.byte()?),
        Shape::S8 => Val::S8(i8::from_le_bytes(reader.take()?)),
        Shape::U16 => Val::U16(u16::from_le_bytes(reader.take()?)),
        Shape::S16 => Val::S16(i16::from_le_bytes(reader.take()?)),
        Shape::U32 => Val::U32(reader.u32()?),
        Shape::S32 => Val::S32(i32::from_le_bytes(reader.take()?)),
        Shape::U64 => Val::U64(u64::from_le_bytes(reader.take()?)),
        Shape::S64 => Val::S64(i64::from_le_bytes(reader.take()?)),
        Shape::F32 => Val::Float32(f32::from_le_bytes(reader.take()?)),
        Shape::F64 => Val::Float64(f64::from_le_bytes(reader.take()?)),
        Shape::Char => {
            let code = reader.u32()?;
            Val::Char(char::from_u32(code).ok_or_else(|| format!("{code:#x} is not a char"))?)
        }
        Shape::String => {
            let length = reader.u32()? as usize;
            reader.footprint.need(length)?;
            let bytes = reader.slice(length)?;
            let text = std::str::from_utf8(bytes).map_err(|error| format!("a string that is not UTF-8: {error}"))?;
            Val::String(text.to_string())
        }
        Shape::List(element, element_bytes) => {
            let count = reader.count()?;
            reader.footprint.need(count.saturating_mul(*element_bytes))?;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(decode(element, reader)?);
            }
            Val::List(items)
        }
        Shape::Record(fields) => {
            reader
                .footprint
                .names(fields.iter().map(|(name, _)| name.len()).sum())?;
            Val::Record(
                fields
                    .iter()
                    .map(|(name, shape)| Ok((name.clone(), decode(shape, reader)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        Shape::Tuple(shapes) => Val::Tuple(
            shapes
                .iter()
                .map(|shape| decode(shape, reader))
                .collect::<Result<_, String>>()?,
        ),
        Shape::Variant(cases) => {
            let (name, payload) = &cases[reader.index(cases.len())?];
            reader.footprint.names(name.len())?;
            Val::Variant(name.clone(), decode_payload(payload.as_ref(), reader)?)
        }
        Shape::Enum(names) => {
            let name = &names[reader.index(names.len())?];
            reader.footprint.names(name.len())?;
            Val::Enum(name.clone())
        }
        Shape::Option(shape) => Val::Option(match reader.flag()? {
            false => None,
            true => Some(Box::new(decode(shape, reader)?)),
        }),
        Shape::Result(ok, err) => match reader.flag()? {
            false => Val::Result(Ok(decode_payload(ok.as_deref(), reader)?)),
            true => Val::Result(Err(decode_payload(err.as_deref(), reader)?)),
        },
        Shape::Flags(names) => {
            let mut set = Vec::new();
            for name in names {
                if reader.flag()? {
                    reader.footprint.names(name.len())?;
                    set.push(name.clone());
                }
            }
            Val::Flags(set)
        }
    })
}

fn decode_payload(shape: Option<&Shape>, reader: &mut Reader<'_>) -> Result<Option<Box<Val>>, String> {
    shape.map(|shape| decode(shape, reader).map(Box::new)).transpose()
}

#[cfg(test)]
mod tests {
    use crate::component::wire::{Reader, Shape, decode, encode};
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
    fn values_read_back_as_they_were_written() {
        let shape = Shape::List(
            Box::new(Shape::Record(vec![
                (
                    "a".into(),
                    Shape::Variant(vec![("x".into(), None), ("y".into(), Some(Shape::S64))]),
                ),
                ("b".into(), Shape::Option(Box::new(Shape::F32))),
                ("c".into(), Shape::Flags(vec!["p".into(), "q".into()])),
                ("d".into(), Shape::Result(None, Some(Box::new(Shape::Char)))),
                ("e".into(), Shape::List(Box::new(Shape::U16), 2)),
            ])),
            0,
        );
        let record = |tag: &str, payload: Option<Val>| {
            Val::Record(vec![
                ("a".into(), Val::Variant(tag.into(), payload.map(Box::new))),
                ("b".into(), Val::Option(Some(Box::new(Val::Float32(-1.5))))),
                ("c".into(), Val::Flags(vec!["q".into()])),
                ("d".into(), Val::Result(Err(Some(Box::new(Val::Char('🚀')))))),
                ("e".into(), Val::List(vec![Val::U16(7)])),
            ])
        };
        let value = Val::List(vec![record("x", None), record("y", Some(Val::S64(-2)))]);
        let bytes = encoded(&value, &shape);
        let mut reader = Reader::new(&bytes, usize::MAX);
        assert_eq!(decode(&shape, &mut reader).expect("decodes"), value);
        assert!(reader.is_done());
    }

    #[test]
    fn wrong_flat_bytes_are_errors_without_allocating_for_them() {
        let list = Shape::List(Box::new(Shape::String), 8);
        for bytes in [
            &[0xff, 0xff, 0xff, 0xff][..],         // a count far past the end
            &[1, 0, 0, 0, 9, 0, 0, 0, b'a'][..],   // a string longer than what is left
            &[1, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0x28], // not UTF-8
            &[1, 0, 0],                            // cut inside the count
        ] {
            assert!(decode(&list, &mut Reader::new(bytes, usize::MAX)).is_err(), "{bytes:?}");
        }
        let variant = Shape::Variant(vec![("a".into(), None)]);
        assert!(decode(&variant, &mut Reader::new(&[1, 0, 0, 0], usize::MAX)).is_err());
        assert!(decode(&Shape::Bool, &mut Reader::new(&[2], usize::MAX)).is_err());
        assert!(decode(&Shape::Char, &mut Reader::new(&[0, 0xd8, 0, 0], usize::MAX)).is_err());
    }

    #[test]
    fn numbers_are_little_endian_and_lists_count_their_elements() {
        let list = Val::List(vec![Val::U16(0x0102), Val::U16(0x0304)]);
        assert_eq!(
            encoded(&list, &Shape::List(Box::new(Shape::U16), 2)),
            [2, 0, 0, 0, 2, 1, 4, 3]
        );
        let flags = Val::Flags(vec!["y".into()]);
        assert_eq!(encoded(&flags, &Shape::Flags(vec!["x".into(), "y".into()])), [0, 1]);
    }
}
