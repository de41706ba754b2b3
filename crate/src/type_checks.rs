//! What validating a component may cost beyond the size of its input, bounded before the
//! validator makes the comparisons that cost it.
//!
//! wasmparser compares component types structurally, walking every type a type refers to, and
//! keeps nothing from one comparison for the next. It walks a whole type at each place that checks
//! one: an instantiation (the component's imports against its arguments), an export that ascribes
//! a type, and a `canon lift` or `canon lower` (the function type, flattened). A type of a million
//! nodes written once is a few KB, and each such place costs a few bytes more: 998 instantiations
//! of a component importing 900 functions of a 1,000-field record, 42 KB, took 18 s to validate and
//! 22 s to compile, and a core module's imports count likewise at each instantiation of it.
//! wasmtime's compile walks a lowered or lifted function's type again, and slower: 100 lowerings
//! of one function taking a 360,000-node variant, 26 KB, took 7.6 s. It also converts the type of
//! each exported item whole, the item's type being a new one each time, and an imported (or
//! declared) instance or component type is copied whole for its fresh resources.
//!
//! So the types are measured as those walks see them (every node they pass, with the names they
//! compare), once each with what they refer to, and the walks that each such place asks for are
//! added up, section by section, before the validator reads the section.

use std::collections::HashMap;
use wasmparser::component_types::{
    ComponentAnyTypeId, ComponentCoreModuleTypeId, ComponentCoreTypeId, ComponentDefinedType, ComponentEntityType,
    ComponentValType,
};
use wasmparser::types::TypesRef;
use wasmparser::{
    CanonicalFunction, ComponentExternalKind, ComponentInstance, ComponentTypeRef, Instance, Parser, Payload,
    TypeBounds, Validator, WasmFeatures,
};

/// Type nodes that the places checking types may walk in one input together, whatever its size...
/// The validator walks 100 million in one to two seconds (the shapes above: 602 million in 6.4 s,
/// 1.8 billion in 18 s); the real components measured walk at most 3,210 (a WASI command).
pub const MIN_TYPE_WALK_ALLOWED: u64 = 1 << 22;

/// ...and per byte of the input beyond that (real components walk under 0.02 per byte).
pub const TYPE_WALK_PER_BYTE: u64 = 1;

/// Nodes that a `canon lift` or `canon lower` counts for each node of its function type: the
/// validator walks the type once for it, but wasmtime's compile some 20 times as long (100 lowerings
/// of a 360,000-node variant: 37 ms to validate, 7.6 s to compile).
pub const CANONICAL_WALK_WEIGHT: u64 = 16;

/// Nodes that an export counts for each node of its item's type: the item gets a type of its own
/// (a new identity, as each instance of a component gets), which wasmtime's compile converts
/// whole, some 100 ns a node (1,000 instances made of the export of one 300,000-node type, 21 KB,
/// took 37 s to compile and 3 ms to validate; an outside probe).
pub const CONVERTED_WALK_WEIGHT: u64 = 16;

/// Refuses a component whose type checks would walk more type nodes than [`MIN_TYPE_WALK_ALLOWED`]
/// or [`TYPE_WALK_PER_BYTE`] allow. Bytes the validator refuses first pass: it, or the compiler,
/// says why. A core module passes: its checks compare types already made canonical, in constant
/// time each.
///
/// wasmparser asserts, rather than reports, that types do not refer to one another more than 100
/// deep (2.7 KB reached it): its panic is caught here, this pass being the first to validate a
/// component, and the component refused like any other.
///
/// What it returns is the size of the functions each canonical section lifts and lowers, for the
/// count of what the component's instances define ([`crate::binary`]).
pub fn check(bytes: &[u8]) -> Result<CanonicalTypes, String> {
    let allowed = MIN_TYPE_WALK_ALLOWED.max(TYPE_WALK_PER_BYTE.saturating_mul(bytes.len() as u64));
    match crate::runtime::quiet_panic::catch(|| walked(bytes, allowed)) {
        Ok(Ok((_, sizes))) => Ok(CanonicalTypes(sizes.canonical)),
        Ok(Err(())) => Err(format!(
            "checking the component's types would walk more than {allowed} type nodes (its \
             instantiations, imports, exports and canonical functions each walk the whole type \
             they check)"
        )),
        Err(detail) => Err(format!(
            "the validator cannot check the component's types ({detail}): types that refer to \
                 one another through more than 100 levels, or instances made of one another's exports \
                 as deep, exceed its limits"
        )),
    }
}

/// The type nodes of the functions that each canonical section of a component lifts or lowers
/// (and of task returns' results), by the section's offset in the input. A lower of a lifted
/// function is an adapter that wasmtime compiles again in each instance of the component holding
/// it, its code growing with the function's type: some 3.6 ms for a variant of 2,900 cases of
/// 16 `char`s (55,000 nodes), about 65 ns a node, where a function of a few nodes takes 180 µs.
#[derive(Default, Debug)]
pub struct CanonicalTypes(HashMap<usize, u64>);

impl CanonicalTypes {
    /// The nodes of the canonical section starting at `offset`; 0 for one the validator refused
    /// before it, or that this pass never reached.
    pub fn nodes(&self, offset: usize) -> u64 {
        self.0.get(&offset).copied().unwrap_or(0)
    }
}

/// The type nodes checking `bytes` walks, or `Err` once past `allowed`, before the validator
/// reads the section that would pass it; and the sizes met on the way.
fn walked(bytes: &[u8], allowed: u64) -> Result<(u64, Sizes), ()> {
    // Every feature: a component the engine would compile must reach the places that cost.
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut sizes = Sizes::default();
    let mut walked = 0u64;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        // The types of the component being read, then of those it is nested in (outer aliases).
        let levels: Vec<TypesRef> = (0..).map_while(|level| validator.types(level)).collect();
        if let Some(types) = levels.first() {
            walked = walked.saturating_add(sizes.walks(types, &levels[1..], &payload));
        }
        if walked > allowed {
            return Err(());
        }
        // Function bodies are left unchecked (the validator hands them back): they cost nothing
        // here, and the compiler checks them.
        if validator.payload(&payload).is_err() {
            break;
        }
    }
    Ok((walked, sizes))
}

/// The size of each type met so far, as the validator's walks see it: one node for the type, each
/// name it compares (one more per 16 bytes of name), and the size of each type it refers to, as
/// often as it refers to it.
#[derive(Default)]
struct Sizes {
    types: HashMap<ComponentAnyTypeId, u64>,
    modules: HashMap<ComponentCoreModuleTypeId, u64>,
    /// See [`CanonicalTypes`].
    canonical: HashMap<usize, u64>,
}

impl Sizes {
    /// The nodes the validator walks reading `payload` of the component `types` describes.
    fn walks(&mut self, types: &TypesRef, outer: &[TypesRef], payload: &Payload) -> u64 {
        let mut walked = 0u64;
        let mut add = |nodes: u64| walked = walked.saturating_add(nodes);
        match payload {
            Payload::ComponentImportSection(reader) => {
                // An import gets its type of its own (fresh resources, the type copied), as an
                // export does; an imported type is a new index a later import may name.
                let mut imported_types = Vec::new();
                for import in reader.clone().into_iter().flatten() {
                    let size = self.type_ref(types, &imported_types, import.ty);
                    if copies(import.ty) {
                        add(size.saturating_mul(CONVERTED_WALK_WEIGHT));
                    }
                    if let ComponentTypeRef::Type(_) = import.ty {
                        imported_types.push(size);
                    }
                }
            }
            Payload::ComponentTypeSection(reader) => {
                let mut defined = Vec::new();
                for ty in reader.clone().into_iter().flatten() {
                    let mut declared = Declared {
                        types,
                        outer,
                        section: &defined,
                        scopes: Vec::new(),
                        walked: 0,
                    };
                    let size = declared.size(self, &ty);
                    add(declared.walked);
                    defined.push(size);
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader.clone().into_iter().flatten() {
                    match instance {
                        ComponentInstance::Instantiate { component_index, .. } => {
                            if component_index < types.component_count() {
                                let component = types.component_at(component_index);
                                add(self.any(types, ComponentAnyTypeId::Component(component)));
                            }
                        }
                        ComponentInstance::FromExports(exports) => {
                            for export in exports.iter() {
                                let size = self.exported(types, &[], export.kind, export.index);
                                add(size.saturating_mul(CONVERTED_WALK_WEIGHT));
                            }
                        }
                    }
                }
            }
            Payload::InstanceSection(reader) => {
                for instance in reader.clone().into_iter().flatten() {
                    if let Instance::Instantiate { module_index, .. } = instance
                        && module_index < types.module_count()
                    {
                        add(self.module(types, types.module_at(module_index)));
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                // An exported type is a new index that a later export of the same section may
                // ascribe: its size is that of the type it exports.
                let mut exported_types = Vec::new();
                for export in reader.clone().into_iter().flatten() {
                    let ascribed = export.ty.map(|ty| self.type_ref(types, &exported_types, ty));
                    add(ascribed.unwrap_or(0));
                    let size = self.exported(types, &exported_types, export.kind, export.index);
                    add(ascribed.unwrap_or(size).saturating_mul(CONVERTED_WALK_WEIGHT));
                    if export.kind == ComponentExternalKind::Type {
                        exported_types.push(ascribed.unwrap_or(size));
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                // A lift makes a component function that a later lower of the same section may
                // lower: its size is that of its type.
                let mut lifted = Vec::new();
                let mut section = 0u64;
                for function in reader.clone().into_iter().flatten() {
                    let size = match function {
                        CanonicalFunction::Lift { type_index, .. } => {
                            let size = self.type_at(types, &[], type_index);
                            lifted.push(size);
                            size
                        }
                        CanonicalFunction::Lower { func_index, .. } => {
                            let count = types.component_function_count();
                            if func_index < count {
                                let func = types.component_function_at(func_index);
                                self.any(types, ComponentAnyTypeId::Func(func))
                            } else {
                                lifted.get((func_index - count) as usize).copied().unwrap_or(1)
                            }
                        }
                        CanonicalFunction::TaskReturn {
                            result: Some(result), ..
                        } => self.read_value(types, result),
                        _ => 0,
                    };
                    add(size.saturating_mul(CANONICAL_WALK_WEIGHT));
                    section = section.saturating_add(size);
                }
                self.canonical.insert(reader.range().start, section);
            }
            _ => {}
        }
        walked
    }

    /// The size of the type of what an export names: the item of `kind` at `index`, a type
    /// maybe one that the section being read exported before (`exported_types`).
    fn exported(&mut self, types: &TypesRef, exported_types: &[u64], kind: ComponentExternalKind, index: u32) -> u64 {
        match kind {
            ComponentExternalKind::Type => self.type_at(types, exported_types, index),
            ComponentExternalKind::Func if index < types.component_function_count() => {
                let func = types.component_function_at(index);
                self.any(types, ComponentAnyTypeId::Func(func))
            }
            ComponentExternalKind::Instance if index < types.component_instance_count() => {
                let instance = types.component_instance_at(index);
                self.any(types, ComponentAnyTypeId::Instance(instance))
            }
            ComponentExternalKind::Component if index < types.component_count() => {
                let component = types.component_at(index);
                self.any(types, ComponentAnyTypeId::Component(component))
            }
            ComponentExternalKind::Module if index < types.module_count() => self.module(types, types.module_at(index)),
            _ => 1,
        }
    }

    /// The size of the type a reader's type reference names.
    fn type_ref(&mut self, types: &TypesRef, exported_types: &[u64], ty: ComponentTypeRef) -> u64 {
        match ty {
            ComponentTypeRef::Module(index) => {
                if index < types.core_type_count_in_component()
                    && let ComponentCoreTypeId::Module(module) = types.core_type_at_in_component(index)
                {
                    self.module(types, module)
                } else {
                    1
                }
            }
            ComponentTypeRef::Func(index)
            | ComponentTypeRef::Instance(index)
            | ComponentTypeRef::Component(index)
            | ComponentTypeRef::Type(TypeBounds::Eq(index)) => self.type_at(types, exported_types, index),
            ComponentTypeRef::Value(value) => self.read_value(types, value),
            ComponentTypeRef::Type(TypeBounds::SubResource) => 1,
        }
    }

    /// The size of the type at `index` of the component's types, or of one that the section being
    /// read added after them (`added`); 1 for an index of neither, which the validator refuses.
    fn type_at(&mut self, types: &TypesRef, added: &[u64], index: u32) -> u64 {
        let count = types.component_type_count();
        if index < count {
            self.any(types, types.component_any_type_at(index))
        } else {
            added.get((index - count) as usize).copied().unwrap_or(1)
        }
    }

    /// The size of a value type as a reader spells it (a primitive, or a type index).
    fn read_value(&mut self, types: &TypesRef, value: wasmparser::ComponentValType) -> u64 {
        match value {
            wasmparser::ComponentValType::Primitive(_) => 1,
            wasmparser::ComponentValType::Type(index) => self.type_at(types, &[], index),
        }
    }

    fn module(&mut self, types: &TypesRef, id: ComponentCoreModuleTypeId) -> u64 {
        if let Some(&size) = self.modules.get(&id) {
            return size;
        }
        let module = &types[id];
        let imports = module
            .imports
            .keys()
            .map(|(module, name)| named(module).saturating_add(named(name)));
        let exports = module.exports.keys().map(|name| named(name));
        let size = imports.chain(exports).fold(1u64, u64::saturating_add);
        self.modules.insert(id, size);
        size
    }

    fn any(&mut self, types: &TypesRef, id: ComponentAnyTypeId) -> u64 {
        if let Some(&size) = self.types.get(&id) {
            return size;
        }
        let mut size = 1u64;
        let mut add = |nodes: u64| size = size.saturating_add(nodes);
        match id {
            ComponentAnyTypeId::Resource(_) => {}
            ComponentAnyTypeId::Defined(id) => match &types[id] {
                ComponentDefinedType::Primitive(_) | ComponentDefinedType::Own(_) | ComponentDefinedType::Borrow(_) => {
                }
                ComponentDefinedType::Record(record) => {
                    for (name, field) in &record.fields {
                        add(named(name));
                        add(self.value(types, *field));
                    }
                }
                ComponentDefinedType::Variant(variant) => {
                    for (name, case) in &variant.cases {
                        add(named(name));
                        add(case.ty.map_or(0, |ty| self.value(types, ty)));
                    }
                }
                ComponentDefinedType::Tuple(tuple) => {
                    for &ty in tuple.types.iter() {
                        add(self.value(types, ty));
                    }
                }
                ComponentDefinedType::Flags(names) | ComponentDefinedType::Enum(names) => {
                    for name in names {
                        add(named(name));
                    }
                }
                ComponentDefinedType::List { element: ty, .. }
                | ComponentDefinedType::FixedLengthList { element: ty, .. }
                | ComponentDefinedType::Option { ty, .. } => add(self.value(types, *ty)),
                ComponentDefinedType::Map { key, value, .. } => {
                    add(self.value(types, *key));
                    add(self.value(types, *value));
                }
                ComponentDefinedType::Result { ok, err, .. } => {
                    for ty in [ok, err].into_iter().flatten() {
                        add(self.value(types, *ty));
                    }
                }
                ComponentDefinedType::Future { ty, .. } | ComponentDefinedType::Stream { ty, .. } => {
                    add(ty.map_or(0, |ty| self.value(types, ty)));
                }
            },
            ComponentAnyTypeId::Func(id) => {
                let func = &types[id];
                for (name, ty) in func.params.iter() {
                    add(named(name));
                    add(self.value(types, *ty));
                }
                add(func.result.map_or(0, |ty| self.value(types, ty)));
            }
            ComponentAnyTypeId::Instance(id) => {
                for (name, item) in &types[id].exports {
                    add(named(name));
                    add(self.entity(types, item.ty));
                }
            }
            ComponentAnyTypeId::Component(id) => {
                let component = &types[id];
                for (name, item) in component.imports.iter().chain(&component.exports) {
                    add(named(name));
                    add(self.entity(types, item.ty));
                }
            }
        }
        self.types.insert(id, size);
        size
    }

    fn entity(&mut self, types: &TypesRef, entity: ComponentEntityType) -> u64 {
        match entity {
            ComponentEntityType::Module(id) => self.module(types, id),
            ComponentEntityType::Func(id) => self.any(types, ComponentAnyTypeId::Func(id)),
            ComponentEntityType::Value(value) => self.value(types, value),
            ComponentEntityType::Type { referenced, .. } => self.any(types, referenced),
            ComponentEntityType::Instance(id) => self.any(types, ComponentAnyTypeId::Instance(id)),
            ComponentEntityType::Component(id) => self.any(types, ComponentAnyTypeId::Component(id)),
        }
    }

    fn value(&mut self, types: &TypesRef, value: ComponentValType) -> u64 {
        match value {
            ComponentValType::Primitive(_) => 1,
            ComponentValType::Type(id) => self.any(types, ComponentAnyTypeId::Defined(id)),
        }
    }
}

/// A type definition being read (before the validator has it): the types it may name, and the
/// component and instance types it declares, innermost last, each with its own types and
/// instances. Each import or export such a type declares gets its type copied as a component's
/// do (700,000 bytes of imports of one instance type defining a resource, in component types
/// and nested components, took 13 s to validate; an outside probe), so each counts its type
/// [`CONVERTED_WALK_WEIGHT`] times in `walked`.
struct Declared<'a, 'b> {
    types: &'a TypesRef<'b>,
    outer: &'a [TypesRef<'b>],
    section: &'a [u64],
    scopes: Vec<Scope>,
    walked: u64,
}

#[derive(Default)]
struct Scope {
    types: Vec<u64>,
    instances: Vec<u64>,
}

impl Declared<'_, '_> {
    fn size(&mut self, sizes: &mut Sizes, ty: &wasmparser::ComponentType) -> u64 {
        use wasmparser::ComponentDefinedType as Defined;
        let mut size = 1u64;
        let mut add = |nodes: u64| size = size.saturating_add(nodes);
        match ty {
            wasmparser::ComponentType::Defined(defined) => match defined {
                Defined::Primitive(_) | Defined::Own(_) | Defined::Borrow(_) => {}
                Defined::Record(fields) => {
                    for (name, ty) in fields.iter() {
                        add(named(name));
                        add(self.value(sizes, *ty));
                    }
                }
                Defined::Variant(cases) => {
                    for case in cases.iter() {
                        add(named(case.name));
                        add(case.ty.map_or(0, |ty| self.value(sizes, ty)));
                    }
                }
                Defined::Tuple(items) => {
                    for &ty in items.iter() {
                        add(self.value(sizes, ty));
                    }
                }
                Defined::Flags(names) | Defined::Enum(names) => {
                    for name in names.iter() {
                        add(named(name));
                    }
                }
                Defined::List(ty) | Defined::FixedLengthList(ty, _) | Defined::Option(ty) => {
                    add(self.value(sizes, *ty))
                }
                Defined::Map(key, value) => {
                    add(self.value(sizes, *key));
                    add(self.value(sizes, *value));
                }
                Defined::Result { ok, err } => {
                    for ty in [ok, err].into_iter().flatten() {
                        add(self.value(sizes, *ty));
                    }
                }
                Defined::Future(ty) | Defined::Stream(ty) => add(ty.map_or(0, |ty| self.value(sizes, ty))),
            },
            wasmparser::ComponentType::Func(func) => {
                for (name, ty) in func.params.iter() {
                    add(named(name));
                    add(self.value(sizes, *ty));
                }
                add(func.result.map_or(0, |ty| self.value(sizes, ty)));
            }
            wasmparser::ComponentType::Resource { .. } => {}
            wasmparser::ComponentType::Component(declarations) => {
                self.scopes.push(Scope::default());
                for declaration in declarations.iter() {
                    let item = match declaration {
                        wasmparser::ComponentTypeDeclaration::Type(ty) => self.define(sizes, ty),
                        wasmparser::ComponentTypeDeclaration::Alias(alias) => self.alias(sizes, alias),
                        wasmparser::ComponentTypeDeclaration::Export { name, ty } => self.item(sizes, name.name, *ty),
                        wasmparser::ComponentTypeDeclaration::Import(import) => {
                            self.item(sizes, import.name.name, import.ty)
                        }
                        wasmparser::ComponentTypeDeclaration::CoreType(_) => 0,
                    };
                    add(item);
                }
                self.scopes.pop();
            }
            wasmparser::ComponentType::Instance(declarations) => {
                self.scopes.push(Scope::default());
                for declaration in declarations.iter() {
                    let item = match declaration {
                        wasmparser::InstanceTypeDeclaration::Type(ty) => self.define(sizes, ty),
                        wasmparser::InstanceTypeDeclaration::Alias(alias) => self.alias(sizes, alias),
                        wasmparser::InstanceTypeDeclaration::Export { name, ty } => self.item(sizes, name.name, *ty),
                        wasmparser::InstanceTypeDeclaration::CoreType(_) => 0,
                    };
                    add(item);
                }
                self.scopes.pop();
            }
        }
        size
    }

    /// A type defined inside a declaration: it adds to the declaration's types, not to its size.
    fn define(&mut self, sizes: &mut Sizes, ty: &wasmparser::ComponentType) -> u64 {
        let size = self.size(sizes, ty);
        if let Some(scope) = self.scopes.last_mut() {
            scope.types.push(size);
        }
        0
    }

    /// An alias inside a declaration: an outer type's size, or an instance's export taken as
    /// big as the instance's type.
    fn alias(&mut self, sizes: &mut Sizes, alias: &wasmparser::ComponentAlias) -> u64 {
        let size = match *alias {
            wasmparser::ComponentAlias::Outer {
                kind: wasmparser::ComponentOuterAliasKind::Type,
                count,
                index,
            } => self.outer_type(sizes, count, index),
            wasmparser::ComponentAlias::InstanceExport {
                kind: ComponentExternalKind::Type,
                instance_index,
                ..
            } => (self.scopes.last())
                .and_then(|scope| scope.instances.get(instance_index as usize).copied())
                .unwrap_or(1),
            _ => return 0,
        };
        if let Some(scope) = self.scopes.last_mut() {
            scope.types.push(size);
        }
        0
    }

    /// An import or export a declaration declares: its name and type count in the declared
    /// type's size, and its type is copied.
    fn item(&mut self, sizes: &mut Sizes, name: &str, ty: ComponentTypeRef) -> u64 {
        let size = match ty {
            ComponentTypeRef::Func(index)
            | ComponentTypeRef::Instance(index)
            | ComponentTypeRef::Component(index)
            | ComponentTypeRef::Type(TypeBounds::Eq(index)) => self.outer_type(sizes, 0, index),
            ComponentTypeRef::Value(value) => self.value(sizes, value),
            ComponentTypeRef::Module(_) | ComponentTypeRef::Type(TypeBounds::SubResource) => 1,
        };
        if copies(ty) {
            self.walked = self.walked.saturating_add(size.saturating_mul(CONVERTED_WALK_WEIGHT));
        }
        if let Some(scope) = self.scopes.last_mut() {
            match ty {
                ComponentTypeRef::Type(_) => scope.types.push(size),
                ComponentTypeRef::Instance(_) => scope.instances.push(size),
                _ => {}
            }
        }
        named(name).saturating_add(size)
    }

    fn value(&mut self, sizes: &mut Sizes, value: wasmparser::ComponentValType) -> u64 {
        match value {
            wasmparser::ComponentValType::Primitive(_) => 1,
            wasmparser::ComponentValType::Type(index) => self.outer_type(sizes, 0, index),
        }
    }

    /// The size of type `index`, `count` scopes out from the innermost declaration: past the
    /// declarations, of the component being read (or one it is nested in); 1 for an index of
    /// none, which the validator refuses.
    fn outer_type(&mut self, sizes: &mut Sizes, count: u32, index: u32) -> u64 {
        let count = count as usize;
        if count < self.scopes.len() {
            let scope = &self.scopes[self.scopes.len() - 1 - count];
            return scope.types.get(index as usize).copied().unwrap_or(1);
        }
        match count - self.scopes.len() {
            0 => sizes.type_at(self.types, self.section, index),
            level => match self.outer.get(level - 1) {
                Some(types) if index < types.component_type_count() => {
                    sizes.any(types, types.component_any_type_at(index))
                }
                _ => 1,
            },
        }
    }
}

/// Whether importing (or declaring) an item of type `ty` copies its type: an instance or a
/// component gets fresh resources, its type rewritten whole, and a type gets a new identity that
/// wasmtime converts; a function keeps its type.
fn copies(ty: ComponentTypeRef) -> bool {
    matches!(
        ty,
        ComponentTypeRef::Instance(_) | ComponentTypeRef::Component(_) | ComponentTypeRef::Type(_)
    )
}

/// What comparing a name costs, in nodes: one, and one more per 16 bytes.
fn named(name: &str) -> u64 {
    1 + name.len() as u64 / 16
}

#[cfg(test)]
mod tests {
    use super::{CANONICAL_WALK_WEIGHT, CONVERTED_WALK_WEIGHT, MIN_TYPE_WALK_ALLOWED, check, walked};

    fn walk(text: &str) -> u64 {
        walked(&wat::parse_str(text).unwrap(), u64::MAX).unwrap().0
    }

    #[test]
    fn a_lowered_function_walks_its_type_with_names_at_the_canonical_weight() {
        // func(r: record { a, b, bcdefghijklmnopq: u32 }): the func, its parameter's name, the
        // record, each field's name (the long one counts 2) and type.
        let lowered = walk(
            r#"(component
                (type $r (record (field "a" u32) (field "b" u32) (field "bcdefghijklmnopq" u32)))
                (import "r" (type $ri (eq $r)))
                (import "f" (func $f (param "r" $ri)))
                (core func (canon lower (func $f))))"#,
        );
        let (record, func) = (1 + 2 + 2 + 3, 1 + 1 + (1 + 2 + 2 + 3));
        // The record, imported as a type, is copied as well (the function keeps its type).
        assert_eq!(lowered, func * CANONICAL_WALK_WEIGHT + record * CONVERTED_WALK_WEIGHT);
    }

    #[test]
    fn each_instantiation_walks_the_whole_component_type() {
        // The inner component's type: itself, its import's name, the func, its parameter's name
        // and type: 5, three times.
        let instantiated = walk(
            r#"(component
                (import "f" (func $f (param "p" u32)))
                (component $c (import "x" (func (param "p" u32))))
                (instance (instantiate $c (with "x" (func $f))))
                (instance (instantiate $c (with "x" (func $f))))
                (instance (instantiate $c (with "x" (func $f)))))"#,
        );
        assert_eq!(instantiated, 15);
        // A core module's: itself and its two exports, four times.
        let modules = walk(
            r#"(component
                (core module $m (func (export "x")) (func (export "y")))
                (core instance (instantiate $m)) (core instance (instantiate $m))
                (core instance (instantiate $m)) (core instance (instantiate $m)))"#,
        );
        assert_eq!(modules, 12);
    }

    #[test]
    fn an_export_walks_its_type_even_one_exported_in_the_same_section() {
        // The record: itself, and each field's name and type. Each export converts it, and an
        // ascription compares it too.
        let ascribed = walk(
            r#"(component
                (type $r (record (field "a" u32) (field "b" u32)))
                (export $t "t" (type $r))
                (export "u" (type $t) (type (eq $t))))"#,
        );
        assert_eq!(ascribed, 5 * CONVERTED_WALK_WEIGHT + (5 + 5 * CONVERTED_WALK_WEIGHT));
        let made = walk(
            r#"(component
                (type $r (record (field "a" u32) (field "b" u32)))
                (instance (export "a" (type $r)) (export "b" (type $r))))"#,
        );
        assert_eq!(made, 2 * 5 * CONVERTED_WALK_WEIGHT);
    }

    #[test]
    fn an_import_and_a_declared_export_copy_their_type() {
        // The record (5) imported as a type, then exported twice by an instance type that
        // aliases it: each copies it.
        let copied = walk(
            r#"(component
                (type $r (record (field "a" u32) (field "b" u32)))
                (import "t" (type $t (eq $r)))
                (type (instance (alias outer 1 $r (type $rr)) (export "x" (type (eq $rr))) (export "y" (type (eq $rr))))))"#,
        );
        assert_eq!(copied, 3 * 5 * CONVERTED_WALK_WEIGHT);
        // In a component nested in it, an alias two scopes out reaches the same record.
        let nested = walk(
            r#"(component
                (type $r (record (field "a" u32) (field "b" u32)))
                (component (type (instance (alias outer 2 $r (type $rr)) (export "x" (type (eq $rr)))))))"#,
        );
        assert_eq!(nested, 5 * CONVERTED_WALK_WEIGHT);
    }

    #[test]
    fn a_type_walked_at_many_places_is_refused_and_real_shapes_are_not() {
        // `funcs` functions of a 1,000-field record, imported by a component instantiated `times`:
        // 2,000 nodes a function each time (998 instantiations with 300 functions, 26 KB, took
        // 6.4 s to validate).
        let shape = |funcs: usize, times: usize| {
            let record = (0..1000).map(|i| format!("(field \"a{i}\" u32)")).collect::<String>();
            let exports = (0..funcs)
                .map(|i| format!("(export \"f{i}\" (func (param \"r\" $r)))"))
                .collect::<String>();
            let text = format!(
                "(component (type $R (record {record})) (import \"r\" (type $Ri (eq $R)))
                 (import \"x\" (instance $x (export \"r\" (type $r (eq $Ri))) {exports}))
                 (component $C (import \"x\" (instance (type $R2 (record {record})) (export \"r\" (type $r (eq $R2))) {exports})))
                 {})",
                "(instance (instantiate $C (with \"x\" (instance $x))))".repeat(times)
            );
            wat::parse_str(&text).unwrap()
        };
        let bytes = shape(300, 100);
        assert!(bytes.len() < 40_000);
        let message = check(&bytes).unwrap_err();
        assert!(
            message.contains(&format!("would walk more than {MIN_TYPE_WALK_ALLOWED} type nodes")),
            "{message}"
        );
        // Ten functions, five times: 100,000 nodes, and 640,000 for the two imports that copy
        // the instance type (and 32,000 for the record's): within the bound.
        assert!(check(&shape(10, 5)).is_ok());
    }
}
