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
    match bytes[6..8] {
        [0, 0] => Some(Binary::Module),
        [1, 0] => Some(Binary::Component),
        _ => None,
    }
}

/// Validates a component with wasmparser's default features (the standardized proposals and the
/// component model, what the engine compiles); compiling is what `compileComponent` does.
pub fn validate_component(bytes: &[u8]) -> Result<(), String> {
    wasmparser::Validator::new()
        .validate_all(bytes)
        .map(drop)
        .map_err(|error| error.to_string())
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
    }

    #[test]
    fn a_broken_component_is_invalid_without_compiling() {
        assert!(validate_component(b"\0asm\x0d\0\x01\0\x07").is_err());
        assert!(validate_component(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
