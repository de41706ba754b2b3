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

/// Validates a component without compiling it: its structure and types with wasmparser, every
/// core module inside it with `validate_module` (the engine's own check, with the engine's
/// features: a component may not use what the engine would refuse to compile), and how much its
/// type listings would spell out (one parse of the bytes serves both).
pub fn validate_component(bytes: &[u8], validate_module: impl Fn(&[u8]) -> Result<(), String>) -> Result<(), String> {
    let types = wasmparser::Validator::new()
        .validate_all(bytes)
        .map_err(|error| error.to_string())?;
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
                validate_module(module)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
