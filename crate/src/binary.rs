//! What kind of wasm binary some bytes are (core module or component), and validating a component
//! without compiling it.

use crate::type_checks::CanonicalTypes;
use std::rc::Rc;

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
/// instances (of components and core modules), resource types, imports, exports and aliases count
/// one each, its canonical functions [`CANONICAL_WEIGHT`]. wasmtime inlines every nested instantiation when it compiles,
/// and builds everything each instance defines again: a component that instantiates the one nested
/// in it twice, level after level, asks for 2^n instances (541 bytes made the process abort out of
/// memory at 2^27), and 62,750 instances of a component lowering three functions (3.7 KB) had
/// Cranelift compile 188,000 adapters, 34 s and 2.5 GB, where 10 million resource types (3.7 KB)
/// took 2 GB.
const MAX_EXPANDED_DEFINITIONS: u64 = 100_000;

/// What a canonical function (a lift, a lower, a resource built-in) counts toward
/// [`MAX_EXPANDED_DEFINITIONS`]: a lower of a lifted function is an adapter Cranelift compiles,
/// some 180 µs each (an outside probe's measure), where an instance or a resource type costs about
/// a microsecond...
const CANONICAL_WEIGHT: u64 = 10;

/// ...and one more for each this many nodes of the types it lifts or lowers: an adapter's code
/// grows with its function's type, some 65 ns a node (see [`CanonicalTypes`]); 3,600 instances
/// of an adapter of a 2,900-case variant (20 KB) took 10–13 s to compile.
const TYPE_NODES_PER_DEFINITION: u64 = 128;

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

/// A component in a scope's index space, as far as what instantiating it defines.
#[derive(Clone)]
enum Comp {
    /// Defined in this binary.
    Defined(Rc<Definition>),
    /// The scope's `n`th component import: what instantiating it defines is counted where the scope
    /// is instantiated, with the component given for it.
    Import(usize),
    /// One this pass does not follow (an outer scope's import, a component of an imported
    /// instance): instantiating it counts as the whole bound. Real toolchains do neither.
    Opaque,
}

/// What instantiating a component defined in this binary defines.
struct Definition {
    /// Its definitions, its nested instantiations' included, but for its component imports'.
    defined: u64,
    /// How many times it instantiates each of its component imports (by their order), and their
    /// names, by which an instantiation gives them.
    uses: Vec<u64>,
    import_names: Vec<String>,
    /// The components it exports (its imports among them).
    exports: Vec<(String, Comp)>,
}

impl Definition {
    /// One instance of it, given components that define nothing beyond themselves: a component
    /// that instantiates what it is given is only ever given it by an instantiation of an import,
    /// which [`Expansion::instantiate`] counts as the whole bound.
    fn alone(&self) -> u64 {
        (self.uses.iter()).fold(self.defined.saturating_add(1), |sum, &uses| sum.saturating_add(uses))
    }
}

/// The components an instance exports, by name.
#[derive(Default)]
struct Exported {
    components: Vec<(String, Comp)>,
}

impl Exported {
    fn of(components: impl Iterator<Item = (String, Comp)>) -> Self {
        Exported {
            components: components.collect(),
        }
    }

    fn component(&self, name: &str) -> Comp {
        let found = self.components.iter().find(|(exported, _)| exported == name);
        found.map_or(Comp::Opaque, |(_, component)| component.clone())
    }
}

/// A component being read: its component and instance index spaces (as far as they matter here),
/// what it defines so far (see [`MAX_EXPANDED_DEFINITIONS`]), and what [`Definition`] keeps of it.
#[derive(Default)]
struct Expansion {
    components: Vec<Comp>,
    instances: Vec<Rc<Exported>>,
    defined: u64,
    uses: Vec<u64>,
    import_names: Vec<String>,
    exports: Vec<(String, Comp)>,
}

impl Expansion {
    fn count(&mut self, definitions: u64) {
        self.defined = self.defined.saturating_add(definitions);
    }

    fn into_definition(self) -> Definition {
        Definition {
            defined: self.defined,
            uses: self.uses,
            import_names: self.import_names,
            exports: self.exports,
        }
    }

    /// Counts `times` instances of this component's `slot`th component import.
    fn use_import(&mut self, slot: usize, times: u64) {
        if let Some(uses) = self.uses.get_mut(slot) {
            *uses = uses.saturating_add(times);
        }
    }

    /// Counts an instance of `component`, given `args` (its component arguments, by name), and
    /// returns the components the instance exports.
    fn instantiate(&mut self, component: Comp, args: &[(&str, Comp)]) -> Exported {
        let argument = |name: &str| {
            let given = args.iter().find(|(arg, _)| *arg == name);
            given.map_or(Comp::Opaque, |(_, component)| component.clone())
        };
        self.count(1);
        match component {
            Comp::Defined(definition) => {
                self.count(definition.defined);
                for (uses, name) in definition.uses.iter().zip(&definition.import_names) {
                    match argument(name) {
                        _ if *uses == 0 => {}
                        Comp::Defined(given) => self.count(uses.saturating_mul(given.alone())),
                        Comp::Import(own) => self.use_import(own, *uses),
                        Comp::Opaque => self.count(MAX_EXPANDED_DEFINITIONS),
                    }
                }
                Exported::of(definition.exports.iter().map(|(name, exported)| {
                    let exported = match exported {
                        Comp::Import(slot) => argument(&definition.import_names[*slot]),
                        other => other.clone(),
                    };
                    (name.clone(), exported)
                }))
            }
            Comp::Import(own) => {
                self.use_import(own, 1);
                // Given components of its own, it may instantiate them any number of times.
                if !args.is_empty() {
                    self.count(MAX_EXPANDED_DEFINITIONS);
                }
                Exported::default()
            }
            Comp::Opaque => {
                self.count(MAX_EXPANDED_DEFINITIONS);
                Exported::default()
            }
        }
    }
}

/// Refuses a component that would cost the validator or the compiler far more than its size,
/// before either reads it: components or types nested too deep for their recursion, types walked
/// too often ([`crate::type_checks`]), instances defining too much. Malformed bytes pass: the
/// validator or the compiler says why.
pub fn check_component(bytes: &[u8]) -> Result<(), String> {
    check_nesting(bytes)?;
    let canonical = crate::type_checks::check(bytes)?;
    check_expansion(bytes, &canonical)
}

/// Whether the component, or one nested in it, passes any string in UTF-16 or latin1+UTF-16
/// (the `string-encoding` of its canonical options). wasmtime turns such a string into UTF-8 whole
/// while it lifts it, several times slower than it copies UTF-8 (SECURITY 76). Bytes that do not
/// parse count as transcoding: this is asked of code that compiled, where they cannot occur.
pub fn transcodes_strings(bytes: &[u8]) -> bool {
    use wasmparser::{CanonicalFunction as F, CanonicalOption, Payload};
    let transcoded = |options: &[CanonicalOption]| {
        (options.iter()).any(|option| matches!(option, CanonicalOption::UTF16 | CanonicalOption::CompactUTF16))
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let reader = match payload {
            Ok(Payload::ComponentCanonicalSection(reader)) => reader,
            Ok(_) => continue,
            Err(_) => return true,
        };
        for function in reader {
            match function {
                Ok(
                    F::Lift { options, .. }
                    | F::Lower { options, .. }
                    | F::TaskReturn { options, .. }
                    | F::StreamRead { options, .. }
                    | F::StreamWrite { options, .. }
                    | F::FutureRead { options, .. }
                    | F::FutureWrite { options, .. }
                    | F::ErrorContextNew { options }
                    | F::ErrorContextDebugMessage { options },
                ) if transcoded(&options) => return true,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    }
    false
}

/// Refuses a component that nests components deeper than [`MAX_COMPONENT_NESTING`], or types
/// deeper than [`MAX_TYPE_NESTING`], without recursion.
fn check_nesting(bytes: &[u8]) -> Result<(), String> {
    use wasmparser::{Encoding, Payload};
    // Whether each scope being read is a component (a core module's payloads come between its
    // header and its end).
    let mut stack: Vec<bool> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Err(_) => return Ok(()),
            Ok(Payload::Version { encoding, .. }) => {
                stack.push(matches!(encoding, Encoding::Component));
                if stack.iter().filter(|&&component| component).count() > MAX_COMPONENT_NESTING {
                    return Err(format!(
                        "components nest more than {MAX_COMPONENT_NESTING} deep in this component"
                    ));
                }
            }
            Ok(Payload::End(_)) => drop(stack.pop()),
            Ok(Payload::ComponentTypeSection(reader)) => {
                let range = reader.range();
                check_type_nesting(bytes.get(range.clone()).unwrap_or_default(), range.start)?;
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Refuses a component whose instantiation would define more than [`MAX_EXPANDED_DEFINITIONS`]:
/// one pass over its sections, counting each instantiation of a component it defines as what that
/// component defines, and each canonical function by the size of its type (`canonical`).
fn check_expansion(bytes: &[u8], canonical: &CanonicalTypes) -> Result<(), String> {
    use wasmparser::{ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind};
    use wasmparser::{ComponentType, ComponentTypeRef, Encoding, Instance, Payload};

    let too_many = || {
        format!(
            "the component would define more than {MAX_EXPANDED_DEFINITIONS} instances, resource types, \
             canonical functions (which count {CANONICAL_WEIGHT}, and 1 more per \
             {TYPE_NODES_PER_DEFINITION} nodes of their types), imports, exports and aliases when \
             instantiated: components nested in it, instantiated within one another, define theirs again \
             in each instance"
        )
    };
    // `None` for a core module: its payloads come between its header and its end.
    let mut stack: Vec<Option<Expansion>> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return Ok(()) };
        if let Payload::Version { encoding, .. } = payload {
            stack.push(matches!(encoding, Encoding::Component).then(Expansion::default));
            continue;
        }
        if let Payload::End(_) = payload {
            if let Some(Some(done)) = stack.pop()
                && let Some(Some(parent)) = stack.last_mut()
            {
                parent.components.push(Comp::Defined(Rc::new(done.into_definition())));
            }
            continue;
        }
        // The scopes it is nested in, for outer aliases, then the one being read.
        let Some((Some(scope), outer)) = stack.split_last_mut() else {
            continue;
        };
        match payload {
            Payload::ComponentImportSection(reader) => {
                for import in reader.into_iter().flatten() {
                    scope.count(1);
                    match import.ty {
                        ComponentTypeRef::Component(_) => {
                            scope.components.push(Comp::Import(scope.import_names.len()));
                            scope.import_names.push(import.name.name.to_string());
                            scope.uses.push(0);
                        }
                        ComponentTypeRef::Instance(_) => scope.instances.push(Rc::default()),
                        _ => {}
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.into_iter().flatten() {
                    scope.count(1);
                    match alias {
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::Component,
                            count,
                            index,
                        } => {
                            // `count` 0 is this component itself, 1 the one it is nested in, and so on.
                            let components = match (count as usize).checked_sub(1) {
                                None => Some(&scope.components),
                                Some(up) => outer.iter().rev().flatten().nth(up).map(|outer| &outer.components),
                            };
                            let found = components.and_then(|components| components.get(index as usize).cloned());
                            // An outer scope's import is instantiated here once per instance of this
                            // scope, which its own count cannot see: counted as the whole bound.
                            scope.components.push(match found {
                                Some(Comp::Import(_)) | None => Comp::Opaque,
                                Some(found) => found,
                            });
                        }
                        ComponentAlias::InstanceExport {
                            kind,
                            instance_index,
                            name,
                        } => {
                            let instance = scope
                                .instances
                                .get(instance_index as usize)
                                .cloned()
                                .unwrap_or_default();
                            match kind {
                                ComponentExternalKind::Component => scope.components.push(instance.component(name)),
                                ComponentExternalKind::Instance => scope.instances.push(Rc::default()),
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
            }
            Payload::ComponentTypeSection(reader) => {
                // A resource type a component defines is a new type in each of its instances.
                let resources = (reader.into_iter().flatten())
                    .filter(|ty| matches!(ty, ComponentType::Resource { .. }))
                    .count();
                scope.count(resources as u64);
            }
            Payload::ComponentCanonicalSection(reader) => {
                let nodes = canonical.nodes(reader.range().start);
                let functions = reader.into_iter().flatten().count() as u64;
                scope.count(functions.saturating_mul(CANONICAL_WEIGHT) + nodes / TYPE_NODES_PER_DEFINITION);
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader.into_iter().flatten() {
                    let made = match instance {
                        ComponentInstance::Instantiate { component_index, args } => {
                            let component = scope.components.get(component_index as usize).cloned();
                            let args: Vec<(&str, Comp)> = (args.iter())
                                .filter(|arg| arg.kind == ComponentExternalKind::Component)
                                .map(|arg| {
                                    (
                                        arg.name,
                                        scope
                                            .components
                                            .get(arg.index as usize)
                                            .cloned()
                                            .unwrap_or(Comp::Opaque),
                                    )
                                })
                                .collect();
                            scope.instantiate(component.unwrap_or(Comp::Opaque), &args)
                        }
                        ComponentInstance::FromExports(exports) => {
                            scope.count(exports.len() as u64);
                            Exported::of(
                                exports
                                    .iter()
                                    .filter(|export| export.kind == ComponentExternalKind::Component)
                                    .map(|export| {
                                        (
                                            export.name.name.to_string(),
                                            scope
                                                .components
                                                .get(export.index as usize)
                                                .cloned()
                                                .unwrap_or(Comp::Opaque),
                                        )
                                    }),
                            )
                        }
                    };
                    scope.instances.push(Rc::new(made));
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader.into_iter().flatten() {
                    scope.count(1);
                    // An export is a new index of its kind, standing for what it exports.
                    match export.kind {
                        ComponentExternalKind::Component => {
                            let exported = scope
                                .components
                                .get(export.index as usize)
                                .cloned()
                                .unwrap_or(Comp::Opaque);
                            scope.exports.push((export.name.name.to_string(), exported.clone()));
                            scope.components.push(exported);
                        }
                        ComponentExternalKind::Instance => {
                            let exported = scope.instances.get(export.index as usize).cloned().unwrap_or_default();
                            scope.instances.push(exported);
                        }
                        _ => {}
                    }
                }
            }
            Payload::InstanceSection(reader) => {
                let made = (reader.into_iter().flatten())
                    .filter(|instance| matches!(instance, Instance::Instantiate { .. }))
                    .count();
                scope.count(made as u64);
            }
            _ => {}
        }
        if scope.defined > MAX_EXPANDED_DEFINITIONS {
            return Err(too_many());
        }
    }
    Ok(())
}

/// Validates a component without compiling it: its structure and types with wasmparser, every
/// core module inside it with `validate_module` (the engine's own check, with the engine's
/// features: a component may not use what the engine would refuse to compile), and how much its
/// type listings would spell out (one parse of the bytes serves both).
pub fn validate_component(bytes: &[u8], validate_module: impl Fn(&[u8]) -> Result<(), String>) -> Result<(), String> {
    check_component(bytes)?;
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

/// What the wasm surely starts with: the bytes of its memories together (one limit counts them
/// all), and its largest table's elements. A core module's own memories and tables; for a
/// component, those of the core modules it defines and instantiates itself, each instance of
/// them (all are made when it is instantiated). Modules only nested components instantiate are
/// left out, as are imported memories and tables: the figures must never exceed what an instance
/// takes, since `validate` refuses a manifest whose limits are below them (every instance would
/// fail). WAT text is assembled first; malformed bytes count only as far as they parse.
#[napi_derive::napi(object)]
pub struct InitialSizes {
    pub memory_bytes: f64,
    pub table_elements: f64,
}

#[napi_derive::napi(js_name = "initialSizes")]
pub fn initial_sizes(bytes: napi::bindgen_prelude::Uint8Array) -> InitialSizes {
    let sizes = initial(&bytes);
    InitialSizes {
        memory_bytes: sizes.memory as f64,
        table_elements: sizes.table as f64,
    }
}

/// One module's (or instance's) memories together and largest table.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Sizes {
    memory: u64,
    table: u64,
}

/// A module or component being parsed (they nest, and `parse_all` yields their payloads inline).
enum Open {
    Module(Sizes),
    Component {
        /// Each core module index: what its own module starts with, if defined here.
        modules: Vec<Option<Sizes>>,
        instantiated: Vec<u32>,
    },
}

fn initial(bytes: &[u8]) -> Sizes {
    use wasmparser::{ComponentOuterAliasKind, ComponentTypeRef, Encoding, Instance, Payload};
    if kind(bytes).is_none() && is_text(bytes) {
        return wat::parse_bytes(bytes).map_or(Sizes::default(), |binary| initial(&binary));
    }
    let mut open: Vec<Open> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match (payload, open.last_mut()) {
            (Payload::Version { encoding, .. }, _) => open.push(match encoding {
                Encoding::Module => Open::Module(Sizes::default()),
                Encoding::Component => Open::Component {
                    modules: Vec::new(),
                    instantiated: Vec::new(),
                },
            }),
            (Payload::MemorySection(reader), Some(Open::Module(sizes))) => {
                for memory in reader.into_iter().map_while(Result::ok) {
                    let page_bytes = 1u64
                        .checked_shl(memory.page_size_log2.unwrap_or(16))
                        .unwrap_or(u64::MAX);
                    sizes.memory = sizes.memory.saturating_add(memory.initial.saturating_mul(page_bytes));
                }
            }
            (Payload::TableSection(reader), Some(Open::Module(sizes))) => {
                for table in reader.into_iter().map_while(Result::ok) {
                    sizes.table = sizes.table.max(table.ty.initial);
                }
            }
            (Payload::InstanceSection(reader), Some(Open::Component { instantiated, .. })) => {
                for instance in reader.into_iter().map_while(Result::ok) {
                    if let Instance::Instantiate { module_index, .. } = instance {
                        instantiated.push(module_index);
                    }
                }
            }
            // Core modules from elsewhere take an index too, of unknown sizes.
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
                    (Some(Open::Module(sizes)), Some(Open::Component { modules, .. })) => modules.push(Some(sizes)),
                    (Some(Open::Module(sizes)), None) => return sizes,
                    (Some(Open::Component { modules, instantiated }), None) => {
                        let sizes = |index: &u32| modules.get(*index as usize).copied().flatten();
                        return instantiated
                            .iter()
                            .filter_map(sizes)
                            .fold(Sizes::default(), |all, one| Sizes {
                                memory: all.memory.saturating_add(one.memory),
                                table: all.table.max(one.table),
                            });
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Sizes::default()
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
        assert_eq!(check_nesting(&nested_types(MAX_TYPE_NESTING)), Ok(()));
        for levels in [MAX_TYPE_NESTING + 1, 1_000_000] {
            let refused = check_nesting(&nested_types(levels)).unwrap_err();
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
    fn what_a_wasm_surely_starts_with_is_found() {
        let memory = |bytes: &[u8]| initial(bytes).memory;
        let module = wat::parse_str("(module (memory 3) (memory 5) (table 7 funcref) (table 4 funcref))").unwrap();
        assert_eq!(
            initial(&module),
            Sizes {
                memory: 8 * 65536,
                table: 7
            },
            "one module's memories together, its largest table"
        );
        let component = wat::parse_str(
            "(component
               (core module $a (memory 2) (table 30 funcref))
               (core module $b (memory 7))
               (core module $unused (memory 50) (table 900 funcref))
               (component (core module $n (memory 90)) (core instance (instantiate $n)))
               (core instance (instantiate $a))
               (core instance (instantiate $b))
               (core instance (instantiate $b)))",
        )
        .unwrap();
        assert_eq!(
            initial(&component),
            Sizes {
                memory: 16 * 65536,
                table: 30
            },
            "each instance of the modules it instantiates itself; never one left unused"
        );
        assert_eq!(memory(b"(module (memory 1))"), 65536, "text is assembled");
        assert_eq!(memory(b"(module (memory"), 0);
        assert_eq!(memory(&module[..12]), 0, "a truncated binary counts nothing");
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

    #[test]
    fn a_string_encoding_other_than_utf8_anywhere_counts_as_transcoding() {
        // A component lowering an import with `encoding`, nested `depth` components deep.
        let component = |encoding: &str, depth: usize| {
            let mut text = format!(
                r#"(component
                    (import "f" (func $f (param "s" string)))
                    (core module $m (memory (export "mem") 1))
                    (core instance $i (instantiate $m))
                    (core func (canon lower (func $f) (memory (core memory $i "mem")) string-encoding={encoding})))"#
            );
            for _ in 0..depth {
                text = format!(
                    r#"(component (import "f" (func $f (param "s" string)))
                        (component $inner {text})
                        (instance (instantiate $inner (with "f" (func $f)))))"#
                );
            }
            wat::parse_str(text).unwrap()
        };
        for depth in [0, 2] {
            assert!(!transcodes_strings(&component("utf8", depth)));
            assert!(transcodes_strings(&component("utf16", depth)));
            assert!(transcodes_strings(&component("latin1+utf16", depth)));
        }
        assert!(!transcodes_strings(&wat::parse_str("(module (memory 1))").unwrap()));
        assert!(
            transcodes_strings(b"\0asm\x0d\0\x01\0\x0b\x05"),
            "bytes that do not parse"
        );
    }
}
