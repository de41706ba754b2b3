//! Component types as structured descriptors ([`TypeInfo`], [`FuncInfo`]) for `exports` /
//! `imports` listings, and their one WIT-like spelling ([`render`]) used by those listings and by
//! error messages.
//!
//! wasmtime's runtime types are structural (a record type does not know its WIT name), so
//! records, variants, enums and flags are described by their members.

use std::sync::Arc;

use wasmparser::component_types::{ComponentAnyTypeId, ComponentDefinedType, ComponentEntityType, ComponentValType};
use wasmparser::types::TypesRef;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ResourceType, Type};

use napi_derive::napi;

use crate::errors::Failure;

/// A component value type (see [`Type`](https://docs.rs/wasmtime/48.0.8/wasmtime/component/enum.Type.html)).
/// `kind` says which other members are set; members that do not apply are absent.
#[napi(object)]
#[derive(Clone)]
pub struct TypeInfo {
    /// `bool`, `s8`, `u8`, `s16`, `u16`, `s32`, `u32`, `s64`, `u64`, `f32`, `f64`, `char`, `string`,
    /// `list`, `map`, `record`, `tuple`, `variant`, `enum`, `flags`, `option`, `result`, `own`,
    /// `borrow`, `future`, `stream` or `error-context`.
    pub kind: String,
    /// The element of a `list` and the payload of an `option`.
    pub element: Option<Arc<TypeInfo>>,
    /// The length of a fixed-length `list`.
    pub length: Option<u32>,
    /// The key type of a `map`.
    pub key: Option<Arc<TypeInfo>>,
    /// The value type of a `map`.
    pub value: Option<Arc<TypeInfo>>,
    /// The fields of a `record`, in order.
    pub fields: Option<Vec<FieldInfo>>,
    /// The members of a `tuple`, in order.
    pub types: Option<Vec<TypeInfo>>,
    /// The cases of a `variant`, in order.
    pub cases: Option<Vec<CaseInfo>>,
    /// The names of an `enum`'s cases or of a `flags`' flags, in order.
    pub names: Option<Vec<String>>,
    /// The `ok` payload of a `result`, if it has one.
    pub ok: Option<Arc<TypeInfo>>,
    /// The `err` payload of a `result`, if it has one.
    pub err: Option<Arc<TypeInfo>>,
    /// The resource of an `own` or `borrow`, by its WIT name (`counter`).
    pub resource: Option<String>,
    /// The interface that defines that resource (`test:x/api`), absent at the world's root.
    pub interface: Option<String>,
    /// Whether that resource is imported (implemented by the host) rather than the guest's own.
    pub imported: Option<bool>,
}

/// A field of a record (its WIT name, kebab-case).
#[napi(object)]
#[derive(Clone)]
pub struct FieldInfo {
    pub name: String,
    #[napi(js_name = "type")]
    pub type_: TypeInfo,
}

/// A case of a variant, with its payload type if it has one.
#[napi(object)]
#[derive(Clone)]
pub struct CaseInfo {
    pub name: String,
    #[napi(js_name = "type")]
    pub type_: Option<TypeInfo>,
}

/// A named parameter of a component function.
#[napi(object)]
pub struct ParamInfo {
    pub name: String,
    #[napi(js_name = "type")]
    pub type_: TypeInfo,
}

/// The type of a component function (see [`ComponentFunc`](https://docs.rs/wasmtime/48.0.8/wasmtime/component/types/struct.ComponentFunc.html)).
#[napi(object)]
pub struct FuncInfo {
    pub params: Vec<ParamInfo>,
    /// Absent for a function without a result (the component model allows at most one).
    pub result: Option<TypeInfo>,
}

/// One import or export of a component.
#[napi(object)]
pub struct ComponentItemInfo {
    pub name: String,
    /// `func` or `instance`; other kinds (types, resources, modules) are reported by their name.
    pub kind: String,
    /// The WIT-like spelling of `func` (or of the type, for kind `type`).
    #[napi(js_name = "type")]
    pub type_: String,
    /// A function's parameter and result types (kind `func`).
    pub func: Option<FuncInfo>,
    /// The functions of an instance (interface).
    pub exports: Option<Vec<ComponentItemInfo>>,
    /// For an imported interface: true when the runtime's WASI serves it whole, so `imports` need
    /// not give it (unless `wasi: false`).
    pub provided_by_runtime: Option<bool>,
}

impl TypeInfo {
    fn new(kind: &str) -> Self {
        TypeInfo {
            kind: kind.into(),
            element: None,
            length: None,
            key: None,
            value: None,
            fields: None,
            types: None,
            cases: None,
            names: None,
            ok: None,
            err: None,
            resource: None,
            interface: None,
            imported: None,
        }
    }
}

/// A resource type's name, interface and whether it is imported.
type ResourceName = (String, Option<String>, bool);

thread_local! {
    /// While a component's listing is made: the names of its resource types.
    static RESOURCE_NAMES: std::cell::RefCell<Vec<(ResourceType, ResourceName)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `body` with the resource types of `component` named (imports first: a resource an
/// interface re-exports with `use` keeps the name of its import).
pub fn with_resource_names<R>(component: &Component, body: impl FnOnce() -> R) -> R {
    let engine = component.engine();
    let ty = component.component_type();
    let mut names: Vec<(ResourceType, ResourceName)> = Vec::new();
    let mut add = |rt: ResourceType, name: &str, interface: Option<&str>, imported: bool| {
        if !names.iter().any(|(known, _)| *known == rt) {
            names.push((rt, (name.to_string(), interface.map(String::from), imported)));
        }
    };
    let items: Vec<(String, ComponentItem, bool)> = ty
        .imports(engine)
        .map(|(name, item)| (name.to_string(), item.ty.clone(), true))
        .chain(
            ty.exports(engine)
                .map(|(name, item)| (name.to_string(), item.ty.clone(), false)),
        )
        .collect();
    for (name, item, imported) in items {
        match item {
            ComponentItem::Resource(rt) => add(rt, &name, None, imported),
            ComponentItem::ComponentInstance(instance) => {
                for (member, export) in instance.exports(engine) {
                    if let ComponentItem::Resource(rt) = export.ty {
                        add(rt, member, Some(&name), imported);
                    }
                }
            }
            _ => {}
        }
    }
    RESOURCE_NAMES.with(|known| *known.borrow_mut() = names);
    let result = body();
    RESOURCE_NAMES.with(|known| known.borrow_mut().clear());
    result
}

fn resource_info(kind: &str, rt: &ResourceType) -> TypeInfo {
    let named = RESOURCE_NAMES.with(|known| {
        known
            .borrow()
            .iter()
            .find(|(known, _)| known == rt)
            .map(|(_, name)| name.clone())
    });
    match named {
        Some((name, interface, imported)) => TypeInfo {
            resource: Some(name),
            interface,
            imported: Some(imported),
            ..TypeInfo::new(kind)
        },
        None => TypeInfo::new(kind),
    }
}

fn boxed(ty: &Type) -> Option<Arc<TypeInfo>> {
    Some(Arc::new(describe(ty)))
}

/// The descriptor of a value type.
pub fn describe(ty: &Type) -> TypeInfo {
    let kind = match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(list) => {
            return TypeInfo {
                element: boxed(&list.ty()),
                ..TypeInfo::new("list")
            };
        }
        Type::FixedLengthList(list) => {
            return TypeInfo {
                element: boxed(&list.ty()),
                length: Some(list.len()),
                ..TypeInfo::new("list")
            };
        }
        Type::Map(map) => {
            return TypeInfo {
                key: boxed(&map.key()),
                value: boxed(&map.value()),
                ..TypeInfo::new("map")
            };
        }
        Type::Record(record) => {
            let fields = record
                .fields()
                .map(|field| FieldInfo {
                    name: field.name.to_string(),
                    type_: describe(&field.ty),
                })
                .collect();
            return TypeInfo {
                fields: Some(fields),
                ..TypeInfo::new("record")
            };
        }
        Type::Tuple(tuple) => {
            return TypeInfo {
                types: Some(tuple.types().map(|member| describe(&member)).collect()),
                ..TypeInfo::new("tuple")
            };
        }
        Type::Variant(variant) => {
            let cases = variant
                .cases()
                .map(|case| CaseInfo {
                    name: case.name.to_string(),
                    type_: case.ty.as_ref().map(describe),
                })
                .collect();
            return TypeInfo {
                cases: Some(cases),
                ..TypeInfo::new("variant")
            };
        }
        Type::Enum(enumeration) => {
            return TypeInfo {
                names: Some(enumeration.names().map(String::from).collect()),
                ..TypeInfo::new("enum")
            };
        }
        Type::Flags(flags) => {
            return TypeInfo {
                names: Some(flags.names().map(String::from).collect()),
                ..TypeInfo::new("flags")
            };
        }
        Type::Option(option) => {
            return TypeInfo {
                element: boxed(&option.ty()),
                ..TypeInfo::new("option")
            };
        }
        Type::Result(result) => {
            return TypeInfo {
                ok: result.ok().as_ref().and_then(boxed),
                err: result.err().as_ref().and_then(boxed),
                ..TypeInfo::new("result")
            };
        }
        Type::Own(rt) => return resource_info("own", rt),
        Type::Borrow(rt) => return resource_info("borrow", rt),
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
    };
    TypeInfo::new(kind)
}

/// The descriptor of a function type.
pub fn describe_func(func: &ComponentFunc) -> FuncInfo {
    FuncInfo {
        params: func
            .params()
            .map(|(name, ty)| ParamInfo {
                name: name.to_string(),
                type_: describe(&ty),
            })
            .collect(),
        result: func.results().next().map(|ty| describe(&ty)),
    }
}

/// The WIT-like spelling of a descriptor: `list<u8>`, `record { x: s32, y: s32 }`,
/// `result<_, string>`, `own<resource>`.
pub fn render(ty: &TypeInfo) -> String {
    let child = |member: &Option<Arc<TypeInfo>>| member.as_deref().map(render);
    let names = |names: &Option<Vec<String>>| names.as_deref().unwrap_or_default().join(", ");
    match ty.kind.as_str() {
        "list" => match ty.length {
            Some(length) => format!("list<{}, {length}>", child(&ty.element).unwrap_or_default()),
            None => format!("list<{}>", child(&ty.element).unwrap_or_default()),
        },
        "option" => format!("option<{}>", child(&ty.element).unwrap_or_default()),
        "map" => format!(
            "map<{}, {}>",
            child(&ty.key).unwrap_or_default(),
            child(&ty.value).unwrap_or_default()
        ),
        "record" => {
            let fields: Vec<String> = (ty.fields.as_deref().unwrap_or_default().iter())
                .map(|field| format!("{}: {}", field.name, render(&field.type_)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        "tuple" => {
            let members: Vec<String> = ty.types.as_deref().unwrap_or_default().iter().map(render).collect();
            format!("tuple<{}>", members.join(", "))
        }
        "variant" => {
            let cases: Vec<String> = (ty.cases.as_deref().unwrap_or_default().iter())
                .map(|case| match &case.type_ {
                    Some(payload) => format!("{}({})", case.name, render(payload)),
                    None => case.name.clone(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        "enum" | "flags" => format!("{} {{ {} }}", ty.kind, names(&ty.names)),
        "result" => match (child(&ty.ok), child(&ty.err)) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{ok}>"),
            (None, Some(err)) => format!("result<_, {err}>"),
            (Some(ok), Some(err)) => format!("result<{ok}, {err}>"),
        },
        "own" | "borrow" => format!("{}<{}>", ty.kind, ty.resource.as_deref().unwrap_or("resource")),
        primitive => primitive.into(),
    }
}

/// `func(a: string, b: u32) -> u32`
pub fn render_func(func: &FuncInfo) -> String {
    let params: Vec<String> = (func.params.iter())
        .map(|param| format!("{}: {}", param.name, render(&param.type_)))
        .collect();
    match &func.result {
        Some(result) => format!("func({}) -> {}", params.join(", "), render(result)),
        None => format!("func({})", params.join(", ")),
    }
}

/// The spelling of a value type, for error messages.
pub fn wit_type(ty: &Type) -> String {
    render(&describe(ty))
}

/// The spelling of a function type, for error messages.
pub fn func_signature(func: &ComponentFunc) -> String {
    render_func(&describe_func(func))
}

fn item_info(engine: &wasmtime::Engine, name: &str, item: &ComponentItem) -> ComponentItemInfo {
    let (kind, type_, func, exports) = match item {
        ComponentItem::ComponentFunc(func) => {
            let func = describe_func(func);
            ("func", render_func(&func), Some(func), None)
        }
        ComponentItem::ComponentInstance(instance) => (
            "instance",
            "instance".to_string(),
            None,
            Some(
                instance
                    .exports(engine)
                    .map(|(name, export)| item_info(engine, name, &export.ty))
                    .collect(),
            ),
        ),
        ComponentItem::Type(ty) => ("type", wit_type(ty), None, None),
        ComponentItem::Resource(_) => ("resource", "resource".to_string(), None, None),
        ComponentItem::CoreFunc(_) => ("core-func", "core func".to_string(), None, None),
        ComponentItem::Module(_) => ("module", "core module".to_string(), None, None),
        ComponentItem::Component(_) => ("component", "component".to_string(), None, None),
    };
    ComponentItemInfo {
        name: name.to_string(),
        kind: kind.into(),
        type_,
        func,
        exports,
        provided_by_runtime: None,
    }
}

/// How much the `exports` and `imports` listings of one component may spell out: type nodes
/// (a type, a field, a case, a parameter each count one) and bytes of names within them.
///
/// wasmtime's types are structural, so a type is written out in full at every place it is used: a
/// few KiB of component can reach wasmparser's own bound of about a million nodes, whose listing
/// took 2.9 s of the JS thread and 340 MiB (test 12.15 in `__test__/integration/escapes.spec.ts`). The
/// largest real component among the fixtures (a WASI command importing all of WASI) lists about a
/// thousand nodes and 33 KiB of text.
pub const MAX_LISTED_TYPE_NODES: usize = 100_000;
pub const MAX_LISTED_NAME_BYTES: usize = 4 << 20;

/// What is left of the listing bounds while a component is measured.
struct Budget {
    nodes: usize,
    name_bytes: usize,
}

/// The listing would pass a bound.
struct TooLarge;

impl Budget {
    fn new() -> Self {
        Budget {
            nodes: MAX_LISTED_TYPE_NODES,
            name_bytes: MAX_LISTED_NAME_BYTES,
        }
    }

    fn node(&mut self) -> Result<(), TooLarge> {
        self.nodes = self.nodes.checked_sub(1).ok_or(TooLarge)?;
        Ok(())
    }

    fn name(&mut self, name: &str) -> Result<(), TooLarge> {
        self.name_bytes = self.name_bytes.checked_sub(name.len()).ok_or(TooLarge)?;
        self.node()
    }

    /// Counts what [`describe`] would make of `ty`, stopping as soon as a bound is passed.
    fn value(&mut self, ty: &Type) -> Result<(), TooLarge> {
        self.node()?;
        match ty {
            Type::List(list) => self.value(&list.ty()),
            Type::FixedLengthList(list) => self.value(&list.ty()),
            Type::Map(map) => self.value(&map.key()).and_then(|()| self.value(&map.value())),
            Type::Option(option) => self.value(&option.ty()),
            Type::Result(result) => {
                (result.ok().iter().chain(result.err().iter())).try_for_each(|payload| self.value(payload))
            }
            Type::Record(record) => record.fields().try_for_each(|field| {
                self.name(field.name)?;
                self.value(&field.ty)
            }),
            Type::Tuple(tuple) => tuple.types().try_for_each(|member| self.value(&member)),
            Type::Variant(variant) => variant.cases().try_for_each(|case| {
                self.name(case.name)?;
                case.ty.as_ref().map_or(Ok(()), |payload| self.value(payload))
            }),
            Type::Enum(enumeration) => enumeration.names().try_for_each(|name| self.name(name)),
            Type::Flags(flags) => flags.names().try_for_each(|name| self.name(name)),
            _ => Ok(()),
        }
    }

    fn item(&mut self, engine: &wasmtime::Engine, name: &str, item: &ComponentItem) -> Result<(), TooLarge> {
        self.name(name)?;
        match item {
            ComponentItem::ComponentFunc(func) => {
                func.params().try_for_each(|(param, ty)| {
                    self.name(param)?;
                    self.value(&ty)
                })?;
                func.results().try_for_each(|ty| self.value(&ty))
            }
            ComponentItem::ComponentInstance(instance) => instance
                .exports(engine)
                .try_for_each(|(member, export)| self.item(engine, member, &export.ty)),
            ComponentItem::Type(ty) => self.value(ty),
            _ => Ok(()),
        }
    }
}

/// The same count as [`Budget::value`] and [`Budget::item`], over the wasmparser types that
/// `validate` has (wasmtime's component types are made from them), so that `validate` refuses
/// what a compile would without compiling.
impl Budget {
    fn parsed_value(&mut self, types: TypesRef<'_>, ty: &ComponentValType) -> Result<(), TooLarge> {
        self.node()?;
        let ComponentValType::Type(id) = ty else {
            return Ok(());
        };
        match &types[*id] {
            ComponentDefinedType::List { element, .. } | ComponentDefinedType::FixedLengthList { element, .. } => {
                self.parsed_value(types, element)
            }
            ComponentDefinedType::Map { key, value, .. } => {
                self.parsed_value(types, key)?;
                self.parsed_value(types, value)
            }
            ComponentDefinedType::Option { ty, .. } => self.parsed_value(types, ty),
            ComponentDefinedType::Result { ok, err, .. } => {
                (ok.iter().chain(err.iter())).try_for_each(|payload| self.parsed_value(types, payload))
            }
            ComponentDefinedType::Record(record) => record.fields.iter().try_for_each(|(name, field)| {
                self.name(name)?;
                self.parsed_value(types, field)
            }),
            ComponentDefinedType::Tuple(tuple) => tuple
                .types
                .iter()
                .try_for_each(|member| self.parsed_value(types, member)),
            ComponentDefinedType::Variant(variant) => variant.cases.iter().try_for_each(|(name, case)| {
                self.name(name)?;
                case.ty
                    .as_ref()
                    .map_or(Ok(()), |payload| self.parsed_value(types, payload))
            }),
            ComponentDefinedType::Enum(names) | ComponentDefinedType::Flags(names) => {
                names.iter().try_for_each(|name| self.name(name))
            }
            _ => Ok(()),
        }
    }

    fn parsed_item(&mut self, types: TypesRef<'_>, name: &str, item: &ComponentEntityType) -> Result<(), TooLarge> {
        self.name(name)?;
        match item {
            ComponentEntityType::Func(id) => {
                let func = &types[*id];
                func.params.iter().try_for_each(|(param, ty)| {
                    self.name(param)?;
                    self.parsed_value(types, ty)
                })?;
                func.result.iter().try_for_each(|ty| self.parsed_value(types, ty))
            }
            ComponentEntityType::Instance(id) => {
                (types[*id].exports.iter()).try_for_each(|(member, export)| self.parsed_item(types, member, &export.ty))
            }
            ComponentEntityType::Type {
                created: ComponentAnyTypeId::Defined(id),
                ..
            } => self.parsed_value(types, &ComponentValType::Type(*id)),
            _ => Ok(()),
        }
    }
}

/// [`check_listing_size`] for `validate`, on the wasmparser `types` of a validated component and
/// the names of its own imports and exports.
pub fn check_listing_size_of_validated(types: TypesRef<'_>, imports: &[&str], exports: &[&str]) -> Result<(), String> {
    // A value type imported at the root (`(import "t" (type (eq …)))`) is resolved away:
    // wasmtime's listing has no entry for it, so it is not counted here either.
    let listed = |item: &&wasmparser::component_types::ComponentItem| {
        !matches!(
            item.ty,
            ComponentEntityType::Type {
                created: ComponentAnyTypeId::Defined(_),
                ..
            }
        )
    };
    let imported =
        (imports.iter()).filter_map(|name| Some((*name, types.component_item_for_import(name).filter(listed)?)));
    let exported = (exports.iter()).filter_map(|name| Some((*name, types.component_item_for_export(name)?)));
    let mut budget = Budget::new();
    (imported.chain(exported))
        .try_for_each(|(name, item)| budget.parsed_item(types, name, &item.ty))
        .map_err(|TooLarge| too_large())
}

fn too_large() -> String {
    format!(
        "the component's types, written out at every place they are used, exceed \
         {MAX_LISTED_TYPE_NODES} type nodes or {MAX_LISTED_NAME_BYTES} bytes of names in its \
         imports and exports (airssys-wasm's bound on describing a component)"
    )
}

/// Refuses a component whose listings would pass [`MAX_LISTED_TYPE_NODES`] or
/// [`MAX_LISTED_NAME_BYTES`]; measured before anything describes its types, at a cost bounded by
/// those same limits.
pub fn check_listing_size(component: &Component) -> Result<(), Failure> {
    let engine = component.engine();
    let ty = component.component_type();
    let mut budget = Budget::new();
    let fits = (ty.imports(engine).map(|(name, import)| (name, import.ty)))
        .chain(ty.exports(engine).map(|(name, export)| (name, export.ty)))
        .try_for_each(|(name, item)| budget.item(engine, name, &item));
    fits.map_err(|TooLarge| Failure::Compile(too_large()))
}

pub fn exports(component: &Component) -> Vec<ComponentItemInfo> {
    let engine = component.engine();
    let ty = component.component_type();
    with_resource_names(component, || {
        ty.exports(engine)
            .map(|(name, export)| item_info(engine, name, &export.ty))
            .collect()
    })
}

/// `served` tells the imports the runtime's WASI serves whole.
pub fn imports(component: &Component, served: impl Fn(&str) -> bool) -> Vec<ComponentItemInfo> {
    let engine = component.engine();
    let ty = component.component_type();
    with_resource_names(component, || {
        ty.imports(engine)
            .map(|(name, import)| ComponentItemInfo {
                provided_by_runtime: served(name).then_some(true),
                ..item_info(engine, name, &import.ty)
            })
            .collect()
    })
}
