//! The resource types a component imports, each with the payload the linker gives it and the
//! import that defines it: what the linker and the WASI check both need to know of a resource
//! that several imports name.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ResourceType};

/// The payload (`host_dynamic(n)`) of each resource type a component imports, and which import
/// defines it. A resource that the world or another interface `use`s is imported again under its
/// own name as the same type: the linker must give both names that one type, and only the first
/// needs a JS class.
pub struct ImportedResources(Vec<ResourceType>);

impl ImportedResources {
    pub fn of(component: &Component) -> Self {
        let engine = component.engine();
        let mut types: Vec<ResourceType> = Vec::new();
        let mut add = |item: &ComponentItem| {
            if let ComponentItem::Resource(ty) = item
                && !types.contains(ty)
            {
                types.push(*ty);
            }
        };
        for (_, import) in component.component_type().imports(engine) {
            add(&import.ty);
            if let ComponentItem::ComponentInstance(instance) = &import.ty {
                instance.exports(engine).for_each(|(_, export)| add(&export.ty));
            }
        }
        ImportedResources(types)
    }

    /// The payload of `ty`, and whether this import is the one that defines it (its first).
    pub fn payload(&self, ty: &ResourceType, seen: &mut Vec<u32>) -> (u32, bool) {
        let payload = self.0.iter().position(|known| known == ty).unwrap_or(self.0.len()) as u32;
        let first = !seen.contains(&payload);
        seen.push(payload);
        (payload, first)
    }
}
