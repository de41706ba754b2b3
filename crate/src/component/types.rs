//! WIT-like spellings of component types, for `exports` / `imports` listings and error messages.
//!
//! wasmtime's runtime types are structural (a record type does not know its WIT name), so
//! records, variants, enums and flags are spelled out with their members.

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Type};

use napi_derive::napi;

/// One import or export of a component.
#[napi(object)]
pub struct ComponentItemInfo {
    pub name: String,
    /// `func` or `instance`; other kinds (types, resources, modules) are reported by their name.
    pub kind: String,
    #[napi(js_name = "type")]
    pub type_: String,
    /// The functions of an instance (interface).
    pub exports: Option<Vec<ComponentItemInfo>>,
}

pub fn wit_type(ty: &Type) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(inner) => format!("list<{}>", wit_type(&inner.ty())),
        Type::Map(map) => format!("map<{}, {}>", wit_type(&map.key()), wit_type(&map.value())),
        Type::FixedLengthList(inner) => format!("list<{}, {}>", wit_type(&inner.ty()), inner.len()),
        Type::Record(record) => format!(
            "record {{ {} }}",
            list(
                record
                    .fields()
                    .map(|f| format!("{}: {}", f.name, wit_type(&f.ty)))
                    .collect()
            )
        ),
        Type::Tuple(tuple) => format!("tuple<{}>", list(tuple.types().map(|t| wit_type(&t)).collect())),
        Type::Variant(variant) => format!(
            "variant {{ {} }}",
            list(
                variant
                    .cases()
                    .map(|case| match case.ty {
                        Some(payload) => format!("{}({})", case.name, wit_type(&payload)),
                        None => case.name.to_string(),
                    })
                    .collect()
            )
        ),
        Type::Enum(enumeration) => format!("enum {{ {} }}", enumeration.names().collect::<Vec<_>>().join(", ")),
        Type::Option(option) => format!("option<{}>", wit_type(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", wit_type(&ok)),
            (None, Some(err)) => format!("result<_, {}>", wit_type(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", wit_type(&ok), wit_type(&err)),
        },
        Type::Flags(flags) => format!("flags {{ {} }}", flags.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

/// `func(a: string, b: u32) -> u32`
pub fn func_signature(func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", wit_type(&ty)))
        .collect();
    let results: Vec<String> = func.results().map(|ty| wit_type(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [single] => format!("func({}) -> {single}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

fn item_info(engine: &wasmtime::Engine, name: &str, item: &ComponentItem) -> ComponentItemInfo {
    let (kind, type_, exports) = match item {
        ComponentItem::ComponentFunc(func) => ("func", func_signature(func), None),
        ComponentItem::ComponentInstance(instance) => (
            "instance",
            "instance".to_string(),
            Some(
                instance
                    .exports(engine)
                    .map(|(name, export)| item_info(engine, name, &export.ty))
                    .collect(),
            ),
        ),
        ComponentItem::Type(ty) => ("type", wit_type(ty), None),
        ComponentItem::Resource(_) => ("resource", "resource".to_string(), None),
        ComponentItem::CoreFunc(_) => ("core-func", "core func".to_string(), None),
        ComponentItem::Module(_) => ("module", "core module".to_string(), None),
        ComponentItem::Component(_) => ("component", "component".to_string(), None),
    };
    ComponentItemInfo {
        name: name.to_string(),
        kind: kind.into(),
        type_,
        exports,
    }
}

pub fn exports(component: &Component) -> Vec<ComponentItemInfo> {
    let engine = component.engine();
    let ty = component.component_type();
    ty.exports(engine)
        .map(|(name, export)| item_info(engine, name, &export.ty))
        .collect()
}

pub fn imports(component: &Component) -> Vec<ComponentItemInfo> {
    let engine = component.engine();
    let ty = component.component_type();
    ty.imports(engine)
        .map(|(name, import)| item_info(engine, name, &import.ty))
        .collect()
}
