//! What compiling may cost beyond the size of its input, bounded before wasmtime reads the bytes:
//! one pass over them (a module, or every core module inside a component).
//!
//! Two shapes cost the compiler far more than they cost the writer of the bytes:
//! - Tables that constant element segments fill are precomputed at compile time (wasmtime's
//!   `table_lazy_init`, which Winch needs): a table of up to 2^20 entries from one segment of one
//!   element at its end, 4 MiB from some ten bytes, up to 100 tables in a module.
//! - Winch zeroes each declared local with an instruction of its own: a function body of 8 bytes
//!   declares 50,000 locals, which became 400 KB of machine code.
//!
//! Memory images, the third such shape, are bounded by the engine's configuration instead
//! (`memory_guaranteed_dense_image_size` in `engine.rs`).

use wasmparser::{ElementItems, ElementKind, Encoding, Operator, Parser, Payload, TableInit, TypeRef};

/// Most table entries that wasmtime may precompute for one input, all its modules together (each
/// entry is 4 bytes of the compiled code). Real modules fill one table with their functions that
/// may be called indirectly: tens of thousands.
pub const MAX_TABLE_IMAGE_ENTRIES: u64 = 1 << 20;

/// The largest table wasmtime precomputes (its own `MAX_FUNC_TABLE_SIZE`).
const PRECOMPUTED_TABLE_MAX: u64 = 1 << 20;

/// Locals one input may declare, all its functions together, whatever its size...
pub const MIN_LOCALS_ALLOWED: u64 = 1 << 20;

/// ...and per byte of input. Real code declares about one local per 20 bytes; Winch's code for
/// the locals of an input stays within 32 times its size.
pub const LOCALS_PER_INPUT_BYTE: u64 = 4;

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
    let max_locals = MIN_LOCALS_ALLOWED.max(LOCALS_PER_INPUT_BYTE.saturating_mul(bytes.len() as u64));
    // `None` for a component: modules nest inside components, never in one another.
    let mut stack: Vec<Option<Module>> = Vec::new();
    let (mut table_entries, mut locals) = (0u64, 0u64);
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
                            "the element segments fill more than {MAX_TABLE_IMAGE_ENTRIES} table entries, which \
                             would be precomputed when compiling"
                        ));
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
            Payload::CodeSectionEntry(body) => {
                let Ok(reader) = body.get_locals_reader() else { continue };
                for (count, _) in reader.into_iter().flatten() {
                    locals = locals.saturating_add(u64::from(count));
                }
                if locals > max_locals {
                    return Err(format!(
                        "the functions declare more than {max_locals} locals together ({LOCALS_PER_INPUT_BYTE} per \
                         byte of input, or {MIN_LOCALS_ALLOWED} for a smaller input), too many to compile"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
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
        assert!(refused.contains("more than 1048576 table entries"), "{refused}");
        // Past the table's size, or past what wasmtime precomputes, nothing is built.
        let past = "(module (table 2000000 funcref) (table 8 funcref) (func $f)
            (elem (table 0) (i32.const 1999999) func $f) (elem (table 1) (i32.const 7) func $f))";
        assert_eq!(check(&module(past)), Ok(()));
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
    fn declared_locals_are_bounded_by_the_input() {
        let function = "(func (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64))";
        let few = format!("(module {})", function.repeat(10));
        assert_eq!(check(&module(&few)), Ok(()));
        let many = format!("(module {})", "(func (local $a i64) (local $b i32))".repeat(2));
        assert_eq!(check(&module(&many)), Ok(()));
        // 50,000 locals in a body of a few bytes, 21 times: 1,050,000 in some 200 bytes.
        let crowded = format!("(func (local {}))", "i64 ".repeat(50_000));
        let bytes = module(&format!("(module {})", crowded.repeat(21)));
        assert!(bytes.len() < 300, "{} bytes", bytes.len());
        let refused = check(&bytes).unwrap_err();
        assert!(refused.contains("more than 1048576 locals"), "{refused}");
    }
}
