//! What a component value bound for a guest needs of the guest's memory, at least: its strings'
//! text and its lists' elements live there (the canonical ABI lowers them through the guest's
//! `cabi_realloc`). A value needing more than the guest's memory limit could never reach the
//! guest, so the conversions count as they read (from JS in `convert`, from the flat form in
//! `wire`) and stop as soon as the count passes the limit: making a `Val` per element costs some
//! 40 times the value's bytes, which a 1 MiB guest made 2.6 GB for a 64 MiB argument.

use wasmtime::component::{Type, Val};

/// Bytes of WIT names (record fields, variant and enum cases, flags) one value may copy into the
/// host per byte of the guest's memory limit. wasmtime's `Val` holds each element's names as
/// strings of its own, and a guest's author picks their length: an enum case of 3,000 characters
/// made 400,000 elements (400 KB, within a 2 MiB guest) cost 2.4 GB. Ordinary names stay far
/// below this; a value past it could not be worth its host memory.
const NAME_BYTES_PER_GUEST_BYTE: usize = 64;

/// Names any value may copy whatever the guest's memory: a guest without memory (or a small one)
/// still takes records and variants in its parameters.
const MIN_NAME_BYTES: usize = 16 << 20;

/// The count for one value.
pub struct Footprint {
    needed: usize,
    limit: usize,
    names: usize,
}

impl Footprint {
    /// A count for a guest whose memory limit is `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Footprint {
            needed: 0,
            limit,
            names: 0,
        }
    }

    /// Counts `bytes` of names the value copies into the host; an error past
    /// [`NAME_BYTES_PER_GUEST_BYTE`] times the limit (or [`MIN_NAME_BYTES`]).
    pub fn names(&mut self, bytes: usize) -> Result<(), String> {
        self.names = self.names.saturating_add(bytes);
        let allowed = self.names_allowed();
        if self.names > allowed {
            return Err(format!(
                "its case, field and flag names take more than {allowed} bytes of host memory \
                 ({NAME_BYTES_PER_GUEST_BYTE} times the guest's memory limit, at least 16 MiB)"
            ));
        }
        Ok(())
    }

    fn names_allowed(&self) -> usize {
        self.limit.saturating_mul(NAME_BYTES_PER_GUEST_BYTE).max(MIN_NAME_BYTES)
    }

    /// Counts `bytes` more; an error once the count passes the limit.
    pub fn need(&mut self, bytes: usize) -> Result<(), String> {
        self.needed = self.needed.saturating_add(bytes);
        if self.needed > self.limit {
            return Err(self.too_large(self.needed));
        }
        Ok(())
    }

    /// Bytes left before the limit.
    pub fn left(&self) -> usize {
        self.limit.saturating_sub(self.needed)
    }

    /// Whether either count passed its limit.
    pub fn over(&self) -> bool {
        self.needed > self.limit || self.names > self.names_allowed()
    }

    /// What a value needing `needed` bytes in all is told.
    pub fn too_large(&self, needed: usize) -> String {
        format!(
            "at least {needed} bytes, more than the guest's memory limit ({} bytes) can hold",
            self.limit
        )
    }

    /// [`Self::too_large`] for `more` bytes on top of the count.
    pub fn too_large_with(&self, more: usize) -> String {
        self.too_large(self.needed.saturating_add(more))
    }
}

/// The fewest bytes one element of a list of `ty` takes in guest memory (the canonical ABI's sizes
/// without alignment): what a list of `n` elements needs at least, before they are read.
pub fn element_bytes(ty: &Type) -> usize {
    match ty {
        Type::Bool | Type::U8 | Type::S8 => 1,
        Type::U16 | Type::S16 => 2,
        Type::U32 | Type::S32 | Type::Float32 | Type::Char | Type::Own(_) | Type::Borrow(_) => 4,
        Type::U64 | Type::S64 | Type::Float64 | Type::String | Type::List(_) => 8,
        Type::Record(record) => record.fields().map(|field| element_bytes(&field.ty)).sum(),
        Type::Tuple(tuple) => tuple.types().map(|ty| element_bytes(&ty)).sum(),
        Type::Variant(_) | Type::Enum(_) | Type::Option(_) | Type::Result(_) => 1,
        Type::Flags(flags) => flags.names().count().div_ceil(8),
        _ => 0,
    }
}

/// What a host call moves for `value`, in bytes: the value itself as the canonical ABI lays it out
/// (without alignment), the text of its strings and the elements of its lists, and the record
/// field, case and flag names it holds, which the host copies for every element (their author
/// picks their length: 32 flags of 99,000 characters made each 4-byte element of a `list<flags>`
/// cost the host 3 MB). The host converts each value whatever it holds: a tuple of 90,000 `u8`s,
/// no list in it, took 22.7 ms a call. What a host call charges in fuel (`component/linker.rs`).
pub fn moved_bytes(value: &Val) -> u64 {
    let sum = |values: &mut dyn Iterator<Item = u64>| values.fold(0, u64::saturating_add);
    let payload = |payload: &Option<Box<Val>>| payload.as_deref().map_or(0, moved_bytes);
    match value {
        Val::Bool(_) | Val::U8(_) | Val::S8(_) => 1,
        Val::U16(_) | Val::S16(_) => 2,
        Val::U32(_) | Val::S32(_) | Val::Float32(_) | Val::Char(_) | Val::Resource(_) => 4,
        Val::U64(_) | Val::S64(_) | Val::Float64(_) => 8,
        Val::String(text) => 8u64.saturating_add(text.len() as u64),
        Val::List(items) => 8u64.saturating_add(sum(&mut items.iter().map(moved_bytes))),
        Val::Record(fields) => sum(&mut fields
            .iter()
            .map(|(name, field)| (name.len() as u64).saturating_add(moved_bytes(field)))),
        Val::Tuple(items) => sum(&mut items.iter().map(moved_bytes)),
        Val::Variant(case, value) => (1 + case.len() as u64).saturating_add(payload(value)),
        Val::Enum(case) => 1 + case.len() as u64,
        Val::Option(value) => 1u64.saturating_add(payload(value)),
        Val::Result(Ok(value) | Err(value)) => 1u64.saturating_add(payload(value)),
        Val::Flags(flags) => 4u64.saturating_add(sum(&mut flags.iter().map(|flag| flag.len() as u64))),
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use crate::component::footprint::Footprint;

    #[test]
    fn names_are_counted_against_a_multiple_of_the_limit() {
        let mut footprint = Footprint::new(1 << 20);
        assert!(footprint.names(64 << 20).is_ok());
        let error = footprint.names(1).expect_err("past 64 times the limit");
        assert!(error.contains("more than 67108864 bytes of host memory"), "{error}");
        let mut small = Footprint::new(0);
        assert!(
            small.names(16 << 20).is_ok(),
            "a guest without memory still takes names"
        );
        assert!(small.names(1).is_err());
    }

    #[test]
    fn the_count_stops_past_the_limit_and_says_how_much() {
        let mut footprint = Footprint::new(10);
        assert!(footprint.need(4).is_ok());
        assert!(footprint.need(6).is_ok());
        assert_eq!(footprint.left(), 0);
        let error = footprint.need(1).expect_err("past the limit");
        assert_eq!(
            error,
            "at least 11 bytes, more than the guest's memory limit (10 bytes) can hold"
        );
        assert!(footprint.over());
        assert!(Footprint::new(usize::MAX).need(usize::MAX).is_ok());
    }
}
