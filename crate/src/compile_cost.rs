//! What compiling may cost beyond the size of its input, bounded before wasmtime reads the bytes:
//! one pass over them (a module, or every core module inside a component).
//!
//! Two shapes cost the compiler far more than they cost the writer of the bytes:
//! - Tables that constant element segments fill are precomputed at compile time (wasmtime's
//!   `table_lazy_init`, which Winch needs): a table of up to 2^20 entries from one segment of one
//!   element at its end, 4 MiB from some ten bytes, up to 100 tables in a module.
//! - Winch zeroes each declared local with instructions of its own, more for wider types: a
//!   function body of 8 bytes declares 50,000 locals, which became 400 KB of machine code (800 KB
//!   for `v128` locals).
//!
//! - A function type's values are moved one by one wherever such a function is called, defined or
//!   entered from the host: 1,000 `v128` results made each 5-byte caller 32 KB of Cranelift's
//!   code, and 1,000 `i64` parameters each exported function 31 KB of trampoline.
//!
//! Memory images, the fourth such shape, are bounded by the engine's configuration instead
//! (`memory_guaranteed_dense_image_size` in `engine.rs`).

use wasmparser::{
    CompositeInnerType, ElementItems, ElementKind, Encoding, Operator, Parser, Payload, TableInit, TypeRef, ValType,
};

/// Most table entries that wasmtime may precompute for one input, all its modules together (each
/// entry is 4 bytes of the compiled code). Real modules fill one table with their functions that
/// may be called indirectly: tens of thousands.
pub const MAX_TABLE_IMAGE_ENTRIES: u64 = 1 << 20;

/// The largest table wasmtime precomputes (its own `MAX_FUNC_TABLE_SIZE`).
const PRECOMPUTED_TABLE_MAX: u64 = 1 << 20;

/// Local slots (4 bytes each: an `i64` takes two, a `v128` four) one input's functions may
/// declare together, whatever their size...
pub const MIN_LOCAL_SLOTS_ALLOWED: u64 = 1 << 20;

/// ...and per byte of their code (the code section, so that padding elsewhere buys nothing).
/// Real code declares about one local per 100 bytes; Winch's code for the locals of an input
/// stays within some 16 times the size of its code.
pub const LOCAL_SLOTS_PER_CODE_BYTE: u64 = 4;

/// Most slots (as for locals) a function type's parameters, and its results, may take each: 128
/// `i32`s, 64 `i64`s or 32 `v128`s. Real code passes a few values and returns one (a component's
/// core functions at most 16 and 1).
pub const MAX_SIGNATURE_SLOTS: u64 = 128;

/// A core module being read: how many tables it imports, and for each table it defines, its
/// initial size and how much of it wasmtime would precompute.
#[derive(Default)]
struct Module {
    imported_tables: u32,
    tables: Vec<(u64, u64)>,
}

/// Refuses bytes (binary; text is parsed first) whose precomputed tables or declared locals
/// would cost the compiler more than the bounds above. Malformed bytes pass: the validator or the
/// compiler says why.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    // `None` for a component: modules nest inside components, never in one another.
    let mut stack: Vec<Option<Module>> = Vec::new();
    let (mut table_entries, mut local_slots, mut code_bytes) = (0u64, 0u64, 0u64);
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return Ok(()) };
        match payload {
            Payload::Version { encoding, .. } => {
                stack.push(matches!(encoding, Encoding::Module).then(Module::default));
            }
            Payload::End(_) => {
                if let Some(Some(module)) = stack.pop() {
                    table_entries =
                        (module.tables.iter()).fold(table_entries, |sum, &(_, image)| sum.saturating_add(image));
                    if table_entries > MAX_TABLE_IMAGE_ENTRIES {
                        return Err(format!(
                            "the tables' initial values and element segments fill more than \
                             {MAX_TABLE_IMAGE_ENTRIES} table entries, which would be precomputed when compiling"
                        ));
                    }
                }
            }
            Payload::TypeSection(reader) => {
                for group in reader.into_iter().flatten() {
                    for ty in group.types() {
                        let CompositeInnerType::Func(func) = &ty.composite_type.inner else {
                            continue;
                        };
                        for (values, what, verb) in [
                            (func.params(), "parameters", "take"),
                            (func.results(), "results", "return"),
                        ] {
                            let taken: u64 = values.iter().map(|&ty| slots(ty)).sum();
                            if taken > MAX_SIGNATURE_SLOTS {
                                return Err(format!(
                                    "a function type has {} {what} taking {taken} slots (4 bytes each), more than the \
                                     {MAX_SIGNATURE_SLOTS} a function may {verb}",
                                    values.len()
                                ));
                            }
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                let Some(Some(module)) = stack.last_mut() else { continue };
                for import in reader.into_imports().flatten() {
                    if matches!(import.ty, TypeRef::Table(_)) {
                        module.imported_tables = module.imported_tables.saturating_add(1);
                    }
                }
            }
            Payload::TableSection(reader) => {
                let Some(Some(module)) = stack.last_mut() else { continue };
                for table in reader.into_iter().flatten() {
                    let size = table.ty.initial;
                    // A table with an initial value is precomputed whole.
                    let image = match table.init {
                        TableInit::Expr(_) if size <= PRECOMPUTED_TABLE_MAX => size,
                        _ => 0,
                    };
                    module.tables.push((size, image));
                }
            }
            Payload::ElementSection(reader) => {
                let Some(Some(module)) = stack.last_mut() else { continue };
                for element in reader.into_iter().flatten() {
                    let ElementKind::Active {
                        table_index,
                        offset_expr,
                    } = element.kind
                    else {
                        continue;
                    };
                    let offset = match offset_expr.get_operators_reader().read() {
                        Ok(Operator::I32Const { value }) => u64::from(value.cast_unsigned()),
                        Ok(Operator::I64Const { value }) => value.cast_unsigned(),
                        _ => continue,
                    };
                    let count = match element.items {
                        ElementItems::Functions(items) => items.count(),
                        ElementItems::Expressions(_, items) => items.count(),
                    };
                    let top = offset.saturating_add(u64::from(count));
                    let defined = table_index.unwrap_or(0).checked_sub(module.imported_tables);
                    if let Some(entry) = defined.and_then(|index| module.tables.get_mut(index as usize))
                        && top <= entry.0
                        && top <= PRECOMPUTED_TABLE_MAX
                    {
                        entry.1 = entry.1.max(top);
                    }
                }
            }
            Payload::CodeSectionStart { size, .. } => code_bytes = code_bytes.saturating_add(u64::from(size)),
            Payload::CodeSectionEntry(body) => {
                let Ok(reader) = body.get_locals_reader() else { continue };
                for (count, ty) in reader.into_iter().flatten() {
                    local_slots = local_slots.saturating_add(u64::from(count) * slots(ty));
                }
                let allowed = MIN_LOCAL_SLOTS_ALLOWED.max(LOCAL_SLOTS_PER_CODE_BYTE.saturating_mul(code_bytes));
                if local_slots > allowed {
                    return Err(format!(
                        "the functions declare more than {allowed} slots of locals together (4 bytes each; \
                         {LOCAL_SLOTS_PER_CODE_BYTE} per byte of code, or {MIN_LOCAL_SLOTS_ALLOWED} for less code), \
                         too many to compile"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The 4-byte slots a local of type `ty` takes.
fn slots(ty: ValType) -> u64 {
    match ty {
        ValType::I32 | ValType::F32 => 1,
        ValType::I64 | ValType::F64 | ValType::Ref(_) => 2,
        ValType::V128 => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[test]
    fn tables_filled_at_their_end_count_their_whole_size() {
        let one = "(module (table 1048576 funcref) (func $f) (elem (i32.const 1048575) $f))";
        assert_eq!(check(&module(one)), Ok(()));
        let two = "(module (table 1048576 funcref) (table 2 funcref) (func $f)
            (elem (table 0) (i32.const 1048575) func $f) (elem (table 1) (i32.const 1) func $f))";
        let refused = check(&module(two)).unwrap_err();
        assert!(refused.contains("fill more than 1048576 table entries"), "{refused}");
        // Past the table's size, or past what wasmtime precomputes, nothing is built.
        let past = "(module (table 2000000 funcref) (table 8 funcref) (func $f)
            (elem (table 0) (i32.const 1999999) func $f) (elem (table 1) (i32.const 7) func $f))";
        assert_eq!(check(&module(past)), Ok(()));
    }

    #[test]
    fn a_function_type_takes_and_returns_at_most_128_slots_each() {
        let results = |ty: &str, count: usize| {
            module(&format!(
                "(module (type (func (result {}))))",
                format!("{ty} ").repeat(count)
            ))
        };
        assert_eq!(check(&results("i32", 128)), Ok(()));
        assert_eq!(check(&results("v128", 32)), Ok(()));
        let refused = check(&results("v128", 33)).unwrap_err();
        assert!(refused.contains("33 results taking 132 slots"), "{refused}");
        assert!(check(&results("i64", 1000)).is_err());
        let params = |count: usize| module(&format!("(module (type (func (param {}))))", "i64 ".repeat(count)));
        assert_eq!(check(&params(64)), Ok(()));
        let refused = check(&params(65)).unwrap_err();
        assert!(refused.contains("65 parameters taking 130 slots"), "{refused}");
    }

    #[test]
    fn an_imported_table_is_not_precomputed() {
        // Table 1 is the first defined: read as the second, both defined tables would count.
        let imported = "(module (import \"e\" \"t\" (table 1048576 funcref))
            (table 1048576 funcref) (table 1048576 funcref) (func $f)
            (elem (table 0) (i32.const 1048575) func $f) (elem (table 1) (i32.const 1048575) func $f))";
        assert_eq!(check(&module(imported)), Ok(()));
    }

    #[test]
    fn declared_locals_are_bounded_by_their_size_and_the_code() {
        let function = "(func (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64))";
        let few = format!("(module {})", function.repeat(10));
        assert_eq!(check(&module(&few)), Ok(()));
        // 50,000 locals in a body of a few bytes, 21 times: 1,050,000 slots in some 200 bytes.
        let crowded = |ty: &str, times: usize| {
            let function = format!("(func (local {}))", format!("{ty} ").repeat(50_000));
            module(&format!("(module {})", function.repeat(times)))
        };
        assert_eq!(check(&crowded("i32", 20)), Ok(()));
        let refused = check(&crowded("i32", 21)).unwrap_err();
        assert!(refused.contains("more than 1048576 slots of locals"), "{refused}");
        // A v128 takes four slots: six such functions are over.
        assert!(check(&crowded("v128", 6)).is_err());
        // A custom section buys no room: only the code counts.
        let mut padded = crowded("i32", 21);
        padded.extend_from_slice(&[0, 0x80, 0x80, 0x40, 1, b'x']);
        padded.resize(padded.len() + (1 << 20) - 2, 0);
        assert!(check(&padded).is_err());
    }
}
