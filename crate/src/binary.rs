//! What kind of wasm binary some bytes are (core module or component), and validating a component
//! without compiling it.

/// The two kinds of wasm binary.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Binary {
    /// A core module (layer 0).
    Module,
    /// A component (layer 1).
    Component,
}

/// The kind of binary wasm bytes, from the header; `None` for anything else (WAT text, garbage).
pub fn kind(bytes: &[u8]) -> Option<Binary> {
    if bytes.len() < 8 || !bytes.starts_with(b"\0asm") {
        return None;
    }
    // A core module's version is 1; a component's version varies (wasmparser names a wrong one).
    match bytes[4..8] {
        [1, 0, 0, 0] => Some(Binary::Module),
        [_, _, 1, 0] => Some(Binary::Component),
        _ => None,
    }
}

/// Whether bytes that are not a wasm binary are meant as WAT text: UTF-8 whose first token is a
/// `(` or a `;;` comment. Anything else is refused as a binary, with wasmparser's reason and
/// offset ([`not_wasm`]), not with a WAT parser's complaint about its first character.
pub fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| {
        let text = text.trim_start();
        text.starts_with('(') || text.starts_with(";;")
    })
}

/// Why bytes that are neither a wasm binary nor WAT text are refused.
pub fn not_wasm(bytes: &[u8]) -> String {
    let reason = match bytes.get(..4) {
        // wasmparser prints the two magic numbers as multi-line lists.
        Some(magic) if magic != b"\0asm" => format!(
            "magic header not detected: expected 00 61 73 6d, got {} (at offset 0x0)",
            magic
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        _ => match wasmparser::Parser::new(0).parse_all(bytes).next() {
            Some(Err(error)) => error.to_string(),
            _ => format!("{} bytes without a wasm header", bytes.len()),
        },
    };
    format!("not a wasm binary: {reason}; nor WAT text, which starts with '('")
}

/// How deep components may nest in one another. Real toolchains nest a few levels; the
/// validator's cost grows with the square of the depth (20,000 empty levels, 238 KB: 3 s to
/// validate, 8 GB to compile).
const MAX_COMPONENT_NESTING: usize = 100;

/// How much one instantiation of a component may define, nested instantiations included: its
/// instances (of components and core modules) and resource types count one each, its canonical
/// functions [`CANONICAL_WEIGHT`]. wasmtime inlines every nested instantiation when it compiles,
/// and builds everything each instance defines again: a component that instantiates the one nested
/// in it twice, level after level, asks for 2^n instances (541 bytes made the process abort out of
/// memory at 2^27), and 62,750 instances of a component lowering three functions (3.7 KB) had
/// Cranelift compile 188,000 adapters, 34 s and 2.5 GB, where 10 million resource types (3.7 KB)
/// took 2 GB.
const MAX_EXPANDED_DEFINITIONS: u64 = 100_000;

/// What a canonical function (a lift, a lower, a resource built-in) counts toward
/// [`MAX_EXPANDED_DEFINITIONS`]: a lower of a lifted function is an adapter Cranelift compiles,
/// some 180 µs each (an outside probe's measure), where an instance or a resource type costs about
/// a microsecond.
const CANONICAL_WEIGHT: u64 = 10;

/// How deep component and instance types may nest in one another's declarations. wasmparser reads
/// and validates them recursively: 10,000 levels (30 KB) overflowed the JS thread's stack and
/// killed the process. Real types nest a few levels.
const MAX_TYPE_NESTING: usize = 100;

/// Refuses a type section (`data`, at `offset` in the input) whose component or instance types
/// nest deeper than [`MAX_TYPE_NESTING`], read without recursion; a malformed one passes, for the
/// validator to say why.
fn check_type_nesting(data: &[u8], offset: usize) -> Result<(), String> {
    use wasmparser::{
        BinaryReader, ComponentAlias, ComponentExternName, ComponentImport, ComponentType, ComponentTypeRef, CoreType,
    };
    let nesting = || -> wasmparser::Result<usize> {
        let mut reader = BinaryReader::new(data, offset);
        let mut types_left = reader.read_var_u32()?;
        // Each component or instance type being read: its declarations left, and whether it is a
        // component's (whose declarations may import).
        let mut open: Vec<(u32, bool)> = Vec::new();
        loop {
            let type_next = match open.last_mut() {
                Some((0, _)) => {
                    open.pop();
                    continue;
                }
                Some((left, component)) => {
                    *left -= 1;
                    match reader.read_u8()? {
                        0x01 => true,
                        0x00 => reader.read::<CoreType>().map(|_| false)?,
                        0x02 => reader.read::<ComponentAlias>().map(|_| false)?,
                        0x03 if *component => reader.read::<ComponentImport>().map(|_| false)?,
                        0x04 => {
                            reader.read::<ComponentExternName>()?;
                            reader.read::<ComponentTypeRef>().map(|_| false)?
                        }
                        // Malformed: the validator says why.
                        _ => return Ok(0),
                    }
                }
                None if types_left == 0 => return Ok(0),
                None => {
                    types_left -= 1;
                    true
                }
            };
            if type_next {
                let mut kind = reader.clone();
                match kind.read_u8()? {
                    which @ (0x41 | 0x42) => {
                        let declarations = kind.read_var_u32()?;
                        reader = kind;
                        open.push((declarations, which == 0x41));
                        if open.len() > MAX_TYPE_NESTING {
                            return Ok(open.len());
                        }
                    }
                    // Any other type holds no declarations: wasmparser reads it without recursion.
                    _ => drop(reader.read::<ComponentType>()?),
                }
            }
        }
    };
    match nesting() {
        Ok(depth) if depth > MAX_TYPE_NESTING => Err(format!(
            "component or instance types nest more than {MAX_TYPE_NESTING} deep in this component"
        )),
        _ => Ok(()),
    }
}

/// Refuses a component that nests components deeper than [`MAX_COMPONENT_NESTING`] (or types
/// deeper than [`MAX_TYPE_NESTING`]), or whose instantiation would define more than
/// [`MAX_EXPANDED_DEFINITIONS`], before anything costly or recursive reads it: one pass over its
/// sections, counting each instantiation of a component it defines as what that component
/// defines. Malformed bytes pass: the validator or the compiler says why.
pub fn check_expansion(bytes: &[u8]) -> Result<(), String> {
    use wasmparser::{ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind};
    use wasmparser::{ComponentType, ComponentTypeRef, Encoding, Instance, Payload};

    /// A component being read: what each component in its index space defines when instantiated
    /// (1 for one it imports or aliases: its own count is not known here), and what it defines
    /// itself so far (see [`MAX_EXPANDED_DEFINITIONS`]).
    struct Scope {
        components: Vec<u64>,
        defined: u64,
    }
    // `None` for a core module: its payloads come between its header and its end.
    let mut stack: Vec<Option<Scope>> = Vec::new();
    let too_many = || {
        format!(
            "the component would define more than {MAX_EXPANDED_DEFINITIONS} instances, resource types and \
             canonical functions (the last count {CANONICAL_WEIGHT}) when instantiated: components nested in it, \
             instantiated within one another, define theirs again in each instance"
        )
    };
    // Adds `count` to what the innermost component defines; `false` past the bound.
    let define = |stack: &mut Vec<Option<Scope>>, count: u64| match stack.last_mut() {
        Some(Some(scope)) => {
            scope.defined = scope.defined.saturating_add(count);
            scope.defined <= MAX_EXPANDED_DEFINITIONS
        }
        _ => true,
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return Ok(()) };
        match payload {
            Payload::Version { encoding, .. } => {
                let component = matches!(encoding, Encoding::Component);
                stack.push(component.then(|| Scope {
                    components: Vec::new(),
                    defined: 0,
                }));
                let depth = stack.iter().filter(|scope| scope.is_some()).count();
                if depth > MAX_COMPONENT_NESTING {
                    return Err(format!(
                        "components nest more than {MAX_COMPONENT_NESTING} deep in this component"
                    ));
                }
            }
            Payload::End(_) => {
                if let Some(Some(done)) = stack.pop()
                    && let Some(Some(parent)) = stack.last_mut()
                {
                    parent.components.push(done.defined.saturating_add(1));
                }
            }
            Payload::ComponentImportSection(reader) => {
                let Some(Some(scope)) = stack.last_mut() else { continue };
                for import in reader.into_iter().flatten() {
                    if matches!(import.ty, ComponentTypeRef::Component(_)) {
                        scope.components.push(1);
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.into_iter().flatten() {
                    let count = match alias {
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::Component,
                            count,
                            index,
                        } => stack
                            .iter()
                            .rev()
                            .filter_map(Option::as_ref)
                            .nth(count as usize)
                            .and_then(|outer| outer.components.get(index as usize).copied())
                            .unwrap_or(1),
                        ComponentAlias::InstanceExport {
                            kind: ComponentExternalKind::Component,
                            ..
                        } => 1,
                        _ => continue,
                    };
                    if let Some(Some(scope)) = stack.last_mut() {
                        scope.components.push(count);
                    }
                }
            }
            Payload::ComponentTypeSection(reader) => {
                let range = reader.range();
                check_type_nesting(bytes.get(range.clone()).unwrap_or_default(), range.start)?;
                // A resource type a component defines is a new type in each of its instances.
                let resources = reader
                    .into_iter()
                    .flatten()
                    .filter(|ty| matches!(ty, ComponentType::Resource { .. }))
                    .count();
                if !define(&mut stack, resources as u64) {
                    return Err(too_many());
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                let functions = reader.into_iter().flatten().count() as u64;
                if !define(&mut stack, functions.saturating_mul(CANONICAL_WEIGHT)) {
                    return Err(too_many());
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                let Some(Some(scope)) = stack.last() else { continue };
                let mut made = 0u64;
                for instance in reader.into_iter().flatten() {
                    if let ComponentInstance::Instantiate { component_index, .. } = instance {
                        let defined = scope.components.get(component_index as usize).copied().unwrap_or(1);
                        made = made.saturating_add(defined);
                    }
                }
                if !define(&mut stack, made) {
                    return Err(too_many());
                }
            }
            Payload::InstanceSection(reader) => {
                let made = reader
                    .into_iter()
                    .flatten()
                    .filter(|instance| matches!(instance, Instance::Instantiate { .. }))
                    .count();
                if !define(&mut stack, made as u64) {
                    return Err(too_many());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates a component without compiling it: its structure and types with wasmparser, every
/// core module inside it with `validate_module` (the engine's own check, with the engine's
/// features: a component may not use what the engine would refuse to compile), and how much its
/// type listings would spell out (one parse of the bytes serves both).
pub fn validate_component(bytes: &[u8], validate_module: impl Fn(&[u8]) -> Result<(), String>) -> Result<(), String> {
    check_expansion(bytes)?;
    crate::type_checks::check(bytes)?;
    let types = wasmparser::Validator::new()
        .validate_all(bytes)
        .map_err(|error| crate::names::one_line(&error.to_string()))?;
    // The names the component itself imports and exports: those of its top-level sections, not
    // of the modules and components nested in it.
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(|error| error.to_string())? {
            wasmparser::Payload::ModuleSection { unchecked_range, .. } => {
                let module = bytes.get(unchecked_range.clone()).ok_or_else(|| {
                    format!(
                        "a core module at offset {} runs past the end of the input",
                        unchecked_range.start
                    )
                })?;
                validate_module(module).map_err(|error| shifted_offset(&error, unchecked_range.start))?;
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.map_err(|error| error.to_string())?.name.name);
                }
            }
            wasmparser::Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.map_err(|error| error.to_string())?.name.name);
                }
            }
            _ => {}
        }
    }
    crate::component::types::check_listing_size_of_validated(types.as_ref(), &imports, &exports)
}

/// `message`, an error about a core module, with the offset it ends with, `(at offset 0x..)`
/// within the module, made one within the component that holds it at `start`: as compiling the
/// component reports it.
/// What follows the offset (the explanation `compile_text` adds to a GC refusal) is kept.
fn shifted_offset(message: &str, start: usize) -> String {
    let shifted = message.rsplit_once(" (at offset 0x").and_then(|(text, rest)| {
        let (hex, after) = rest.split_once(')')?;
        let offset = usize::from_str_radix(hex, 16).ok()?;
        Some(format!("{text} (at offset {:#x}){after}", offset.saturating_add(start)))
    });
    shifted.unwrap_or_else(|| message.to_owned())
}

/// The most memory the wasm surely starts with: a core module's memories together (they are
/// instantiated together and one limit counts them all), or for a component the largest such
/// total among the core modules it defines and instantiates itself. Modules only nested
/// components instantiate, or none does, are left out, and so is instantiating one twice: the
/// figure must never exceed what an instance takes, since `validate` refuses a manifest whose
/// memory limit is below it (every instance would fail). WAT text is assembled first; malformed
/// bytes count only as far as they parse.
#[napi_derive::napi(js_name = "initialMemoryBytes")]
pub fn initial_memory_bytes(bytes: napi::bindgen_prelude::Uint8Array) -> f64 {
    initial_memory(&bytes) as f64
}

/// A module or component being parsed (they nest, and `parse_all` yields their payloads inline).
enum Open {
    Module(u64),
    Component {
        /// Each core module index: the memory its own module starts with, if defined here.
        modules: Vec<Option<u64>>,
        instantiated: Vec<u32>,
    },
}

fn initial_memory(bytes: &[u8]) -> u64 {
    use wasmparser::{ComponentOuterAliasKind, ComponentTypeRef, Encoding, Instance, Payload};
    if kind(bytes).is_none() && is_text(bytes) {
        return wat::parse_bytes(bytes).map_or(0, |binary| initial_memory(&binary));
    }
    let mut open: Vec<Open> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match (payload, open.last_mut()) {
            (Payload::Version { encoding, .. }, _) => open.push(match encoding {
                Encoding::Module => Open::Module(0),
                Encoding::Component => Open::Component {
                    modules: Vec::new(),
                    instantiated: Vec::new(),
                },
            }),
            (Payload::MemorySection(reader), Some(Open::Module(total))) => {
                for memory in reader.into_iter().map_while(Result::ok) {
                    let page_bytes = 1u64
                        .checked_shl(memory.page_size_log2.unwrap_or(16))
                        .unwrap_or(u64::MAX);
                    *total = total.saturating_add(memory.initial.saturating_mul(page_bytes));
                }
            }
            (Payload::InstanceSection(reader), Some(Open::Component { instantiated, .. })) => {
                for instance in reader.into_iter().map_while(Result::ok) {
                    if let Instance::Instantiate { module_index, .. } = instance {
                        instantiated.push(module_index);
                    }
                }
            }
            // Core modules from elsewhere take an index too, of unknown memory.
            (Payload::ComponentImportSection(reader), Some(Open::Component { modules, .. })) => {
                let imported = reader.into_iter().map_while(Result::ok);
                modules.extend(
                    imported
                        .filter(|import| matches!(import.ty, ComponentTypeRef::Module(_)))
                        .map(|_| None),
                );
            }
            (Payload::ComponentAliasSection(reader), Some(Open::Component { modules, .. })) => {
                let aliases = reader.into_iter().map_while(Result::ok);
                modules.extend(
                    aliases
                        .filter(|alias| {
                            matches!(
                                alias,
                                wasmparser::ComponentAlias::Outer {
                                    kind: ComponentOuterAliasKind::CoreModule,
                                    ..
                                }
                            )
                        })
                        .map(|_| None),
                );
            }
            (Payload::End(_), _) => {
                let ended = open.pop();
                match (ended, open.last_mut()) {
                    (Some(Open::Module(total)), Some(Open::Component { modules, .. })) => modules.push(Some(total)),
                    (Some(Open::Module(total)), None) => return total,
                    (Some(Open::Component { modules, instantiated }), None) => {
                        let total = |index: &u32| modules.get(*index as usize).copied().flatten();
                        return instantiated.iter().filter_map(total).max().unwrap_or(0);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component whose one type is `levels` instance types nested in one another through type
    /// declarations, with an export in the innermost and a component type's import beside it.
    fn nested_types(levels: usize) -> Vec<u8> {
        let mut body = vec![1u8];
        for _ in 1..levels {
            body.extend([0x42, 0x01, 0x01]);
        }
        // The innermost: a component type importing and exporting a u32 value's type bound.
        body.extend([
            0x41, 0x02, 0x03, 0x00, 0x01, b'a', 0x03, 0x01, 0x04, 0x00, 0x01, b'b', 0x03, 0x01,
        ]);
        let mut bytes = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x07];
        // The section's length, as a LEB128.
        let mut length = body.len();
        loop {
            let byte = (length & 0x7f) as u8;
            length >>= 7;
            bytes.push(if length > 0 { byte | 0x80 } else { byte });
            if length == 0 {
                break;
            }
        }
        bytes.extend(body);
        bytes
    }

    #[test]
    fn types_nested_deeper_than_the_bound_are_refused_without_recursion() {
        // 100 levels pass to the validator; 101, and a million (which overflowed any stack in
        // wasmparser's recursive reader), are refused.
        assert_eq!(check_expansion(&nested_types(MAX_TYPE_NESTING)), Ok(()));
        for levels in [MAX_TYPE_NESTING + 1, 1_000_000] {
            let refused = check_expansion(&nested_types(levels)).unwrap_err();
            assert_eq!(
                refused,
                "component or instance types nest more than 100 deep in this component"
            );
        }
    }

    #[test]
    fn a_core_modules_error_offset_is_made_one_within_its_component() {
        let shifted = shifted_offset("tail calls support is not enabled (at offset 0x17)", 10);
        assert_eq!(shifted, "tail calls support is not enabled (at offset 0x21)");
        assert_eq!(shifted_offset("no offset here", 10), "no offset here");
        assert_eq!(shifted_offset("bad (at offset 0xzz)", 10), "bad (at offset 0xzz)");
    }

    #[test]
    fn the_memory_a_wasm_surely_starts_with_is_found() {
        let module = wat::parse_str("(module (memory 3) (memory 5))").unwrap();
        assert_eq!(initial_memory(&module), 8 * 65536, "one module's memories together");
        let component = wat::parse_str(
            "(component
               (core module $a (memory 2))
               (core module $b (memory 7))
               (core module $unused (memory 50))
               (component (core module $n (memory 90)) (core instance (instantiate $n)))
               (core instance (instantiate $a))
               (core instance (instantiate $b)))",
        )
        .unwrap();
        assert_eq!(
            initial_memory(&component),
            7 * 65536,
            "the largest module it instantiates itself; never one left unused"
        );
        assert_eq!(initial_memory(b"(module (memory 1))"), 65536, "text is assembled");
        assert_eq!(initial_memory(b"(module (memory"), 0);
        assert_eq!(initial_memory(&module[..12]), 0, "a truncated binary counts nothing");
    }

    #[test]
    fn the_header_tells_modules_from_components() {
        assert_eq!(kind(b"\0asm\x01\0\0\0"), Some(Binary::Module));
        assert_eq!(kind(b"\0asm\x0d\0\x01\0"), Some(Binary::Component));
        assert_eq!(kind(b"(module)"), None);
        assert_eq!(kind(b"\0asm"), None);
        assert_eq!(kind(b"\0asm\x09\0\0\0"), None, "a core module of an unknown version");
    }

    #[test]
    fn a_broken_component_is_invalid_without_compiling() {
        let any_module = |_: &[u8]| Ok(());
        assert!(validate_component(b"\0asm\x0d\0\x01\0\x07", any_module).is_err());
        assert!(validate_component(b"\0asm\x0d\0\x01\0", any_module).is_ok());
        // A core module section that claims more bytes than there are.
        let truncated = b"\0asm\x0d\0\x01\0\x01\xa2\x8b\x01\0asm\x01\0\0\0";
        assert!(validate_component(truncated, any_module).is_err());
    }
}
