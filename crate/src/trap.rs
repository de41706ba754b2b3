//! [`wasmtime::Trap`] to the stable error codes (the README's error table).
//!
//! The enum is `#[non_exhaustive]` and grows with every wasmtime major (most new variants belong
//! to component-model async), so every variant we do not name falls back to `ERR_WASM_TRAP`
//! with the variant's own name in `trapCode`.

use wasmtime::Trap;

/// The stable `code` and the `trapCode` (wasmtime's variant name) for a trap.
pub fn classify(trap: Trap) -> (&'static str, String) {
    let code = match trap {
        Trap::UnreachableCodeReached => "ERR_WASM_TRAP_UNREACHABLE",
        Trap::MemoryOutOfBounds => "ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS",
        Trap::IntegerDivisionByZero => "ERR_WASM_TRAP_DIVIDE_BY_ZERO",
        Trap::IntegerOverflow => "ERR_WASM_TRAP_INTEGER_OVERFLOW",
        Trap::BadConversionToInteger => "ERR_WASM_TRAP_BAD_CONVERSION",
        Trap::StackOverflow => "ERR_WASM_TRAP_STACK_OVERFLOW",
        Trap::IndirectCallToNull => "ERR_WASM_TRAP_INDIRECT_CALL",
        Trap::TableOutOfBounds => "ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS",
        Trap::BadSignature => "ERR_WASM_TRAP_BAD_SIGNATURE",
        Trap::OutOfFuel => "ERR_WASM_TRAP_OUT_OF_FUEL",
        // An epoch interrupt is a timeout or an abort; errors.rs tells which from the store.
        Trap::Interrupt => "ERR_WASM_TIMEOUT",
        // The canonical ABI's own rules, broken by the guest: entering or leaving a component
        // instance where it may not (it calls itself back, its realloc or post-return calls an
        // import), and what the adapters between two of its components check.
        Trap::CannotEnterComponent
        | Trap::CannotLeaveComponent
        | Trap::InvalidChar
        | Trap::StringOutOfBounds
        | Trap::ListOutOfBounds
        | Trap::InvalidDiscriminant
        | Trap::UnalignedPointer => "ERR_WASM_GUEST_ABI",
        _ => "ERR_WASM_TRAP",
    };
    (code, format!("{trap:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_traps_get_their_own_code() {
        assert_eq!(classify(Trap::UnreachableCodeReached).0, "ERR_WASM_TRAP_UNREACHABLE");
        assert_eq!(classify(Trap::StackOverflow).0, "ERR_WASM_TRAP_STACK_OVERFLOW");
        assert_eq!(classify(Trap::IntegerDivisionByZero).1, "IntegerDivisionByZero");
    }

    #[test]
    fn unnamed_traps_fall_back_to_the_generic_code_with_their_name() {
        let (code, name) = classify(Trap::CastFailure);
        assert_eq!(code, "ERR_WASM_TRAP");
        assert_eq!(name, "CastFailure");
    }

    #[test]
    fn the_canonical_abis_rules_broken_are_the_guests_abi_errors_with_their_name() {
        let (code, name) = classify(Trap::CannotEnterComponent);
        assert_eq!((code, name.as_str()), ("ERR_WASM_GUEST_ABI", "CannotEnterComponent"));
        assert_eq!(classify(Trap::InvalidChar).0, "ERR_WASM_GUEST_ABI");
    }
}
