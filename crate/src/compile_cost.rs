//! What compiling may cost beyond the size of its input, bounded before wasmtime reads the bytes:
//! one pass over them (a module, or every core module inside a component).
//!
//! These shapes cost the compiler far more than they cost the writer of the bytes:
//! - Tables that constant element segments fill are precomputed at compile time (wasmtime's
//!   `table_lazy_init`, which Winch needs): a table of up to 2^20 entries from one segment of one
//!   element at its end, 4 MiB from some ten bytes, up to 100 tables in a module.
//! - Winch zeroes each declared local with instructions of its own, more for wider types: a
//!   function body of 8 bytes declares 50,000 locals, which became 400 KB of machine code (800 KB
//!   for `v128` locals).
//!
//! - A function type's values are moved one by one wherever such a function is called, defined or
//!   entered from the host: 1,000 `v128` results made each 5-byte caller 32 KB of Cranelift's
//!   code, and 1,000 `i64` parameters each exported function 31 KB of trampoline.
//!
//! - Cranelift's register allocator takes time and memory growing with the square of the values
//!   that a function's blocks take and return: 32,000 blocks that each return an `i32` (192 KB of
//!   input) took 2.1 GB, and 4,000 blocks passing 128 values each (12 KB) took 5.9 GB.
//!
//! - Cranelift's time grows with the square of a function's loops, one after another or nested:
//!   20,000 empty loops (60 KB) took 24 s.
//!
//! - Its register allocator handles each value live across a call at each call, and each value on
//!   the operand stack or in a local across a block edge at each edge: 20,000 calls each above the
//!   results of the ones before (60 KB) took 5.7 s, 10,000 `table.get`s (a runtime call behind a
//!   branch) 57 s, 4,000 locals across 10,000 blocks 13 s. Nested loops cost the cube of their
//!   depth: 2,000 (12 KB) took 9 s.
//!
//! Memory images, the last such shape, are bounded by the engine's configuration instead
//! (`memory_guaranteed_dense_image_size` in `engine.rs`).

use crate::live_locals::{self, LiveLocals};

use wasmparser::{
    BlockType, CompositeInnerType, ContType, ElementItems, ElementKind, Encoding, FrameKind, FuncType, FunctionBody,
    ModuleArity, Operator, Parser, Payload, RefType, SubType, TableInit, TypeRef, ValType,
};

/// Most table entries that wasmtime may precompute for one input, all its modules together (each
/// entry is 4 bytes of the compiled code). Real modules fill one table with their functions that
/// may be called indirectly: tens of thousands.
pub const MAX_TABLE_IMAGE_ENTRIES: u64 = 1 << 20;

/// The largest table wasmtime precomputes (its own `MAX_FUNC_TABLE_SIZE`).
const PRECOMPUTED_TABLE_MAX: u64 = 1 << 20;

/// Local slots (4 bytes each: an `i64` takes two, a `v128` four) one input's functions may
/// declare together, whatever their size...
pub const MIN_LOCAL_SLOTS_ALLOWED: u64 = 1 << 20;

/// ...and per byte of their code (the code section, so that padding elsewhere buys nothing).
/// Real code declares about one local per 100 bytes; Winch's code for the locals of an input
/// stays within some 16 times the size of its code.
pub const LOCAL_SLOTS_PER_CODE_BYTE: u64 = 4;

/// Most slots (as for locals) a function type's parameters, and its results, may take each: 128
/// `i32`s, 64 `i64`s or 32 `v128`s. Real code passes a few values and returns one (a component's
/// core functions at most 16 and 1).
pub const MAX_SIGNATURE_SLOTS: u64 = 128;

/// Most slots (as for locals) that the block types of one function's blocks, loops and ifs may
/// take and return together. The largest function of the real code measured (SpiderMonkey's
/// interpreter, 171 KB) has 1,254 blocks returning one value each; at this bound the costliest
/// shape measured (ifs that each return an `i32`) compiles in 2 s and under 200 MB.
pub const MAX_BLOCK_SLOTS_PER_FUNCTION: u64 = 4096;

/// Most slots (as for locals) of values that one function's calls may pass and return together,
/// each call counting its callee's parameters and results: a call is two bytes, its moves up to
/// 3.8 KB of Cranelift's code, and Cranelift's time and memory grow faster than their number (10,000
/// calls of a function taking and returning 128 values, 20 KB of input, took 17 s and 1.5 GB). The
/// largest count in the real code measured is 11,487, in a function of 181 KB.
pub const MAX_CALL_SLOTS_PER_FUNCTION: u64 = 1 << 16;

/// Slots of values the calls of one input's functions may pass and return together, whatever its
/// size, and beyond that one per byte of code: Winch spends some 12 bytes of code per slot, and real
/// code passes fewer than 0.07 per byte.
pub const MIN_CALL_SLOTS_ALLOWED: u64 = 1 << 16;

/// Slots of values (as for locals) that the signatures of one input's defined functions may take
/// together, whatever its size, and beyond that one per byte of code. Each function that may be
/// called from outside (from a table, an export, the host) gets a trampoline Cranelift compiles,
/// Winch's engines too, moving its values one by one (an import's is made once for its type): 14,000 functions taking
/// and returning 128 values each, in a table (98 KB), took 27 s. Real code takes a few slots per
/// function, well under one per byte of code.
pub const MIN_SIGNATURE_SLOTS_ALLOWED: u64 = 1 << 16;

/// Most loops one input's functions may hold, each function's count squared and summed, whatever
/// the input's size...
pub const MIN_LOOP_SQUARES_ALLOWED: u64 = 1 << 22;

/// ...and per byte of code beyond that. Cranelift's time grows with the square of a function's
/// loops, one after another or nested (20,000 plain loops, 60 KB, took 24 s; 2,048 take 0.4 s); the
/// most in one real function measured is 392, and real code has under 0.07 per byte of code.
pub const LOOP_SQUARES_PER_CODE_BYTE: u64 = 1;

/// Most loops one function may nest, one inside the other. Cranelift's time grows with the cube of
/// their depth: 2,000 (12 KB of input, within the bound on their squares) took 9 s, 1,000 1.2 s.
/// Real code nests at most 16.
pub const MAX_LOOP_NESTING: u64 = 256;

/// Most values one function may hold live across its calls and blocks, added up: at each call
/// (of a function, or of one of wasmtime's runtime functions, as `memory.grow` or `table.get`
/// are compiled), the locals live across it (`live_locals.rs`) and the values on the operand
/// stack below the call's arguments; at each edge between blocks (a block's start and end,
/// `else`, `br_if`, a lazily made table entry's branch), [`EDGE_WEIGHT`] for each value on the
/// operand stack and `live_locals::EDGE_WEIGHT` for each live local, `live_locals::LOOP_WEIGHT`
/// more at a loop's start. Cranelift's register allocator handles each value live across a call
/// at each call, some 27 ns each: 20,000 calls each made above the results of those before it (60
/// KB of input) took 5.7 s, and 10,000 locals loaded before 10,000 calls and summed after them,
/// 2.7 s. A value live across an edge costs it more, some 0.3–0.7 µs on the operand stack and
/// some 50 ns in a local: 10,000 `table.get`s each above the ones before (60 KB) took 57 s and 2.2
/// GB, 16,000 values across 20,000 blocks (344 KB) 94 s, 4,000 locals across 10,000 blocks 13 s.
/// At this bound a function compiles in about a second or two.
pub const MAX_LIVE_ACROSS_PER_FUNCTION: u64 = 1 << 25;

/// What a value on the operand stack counts at an edge between blocks (see above).
pub const EDGE_WEIGHT: u64 = 16;

/// Values live across calls and blocks (as above) one input's functions may hold together,
/// whatever its size...
pub const MIN_LIVE_ACROSS_ALLOWED: u64 = 1 << 25;

/// ...and per byte of code beyond that. The real code measured (SpiderMonkey, wasm-tools, jco's
/// bindings generator, WASI programs) holds at most 7.1 per byte of code (0.35 on the operand
/// stack, the rest in live locals), and 2.2 million in one function (of 181 KB).
pub const LIVE_ACROSS_PER_CODE_BYTE: u64 = 32;

/// A core module being read: how many tables and functions it imports, for each table it defines
/// its initial size and how much of it wasmtime would precompute; for each type the slots its
/// values take (parameters and results; 0 for a type that is no function's), and the types
/// themselves (for the arity of operators); the type of each function, imported ones first; how
/// many function bodies have been read.
#[derive(Default)]
struct Module {
    imported_tables: u32,
    imported_functions: u64,
    tables: Vec<(u64, u64)>,
    type_slots: Vec<u64>,
    types: Vec<SubType>,
    function_types: Vec<u32>,
    bodies: u64,
}

/// Refuses bytes (binary; text is parsed first) whose precomputed tables or declared locals
/// would cost the compiler more than the bounds above. Malformed bytes pass: the validator or the
/// compiler says why.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    // `None` for a component: modules nest inside components, never in one another.
    let mut stack: Vec<Option<Module>> = Vec::new();
    let (mut table_entries, mut local_slots, mut call_slots, mut code_bytes) = (0u64, 0u64, 0u64, 0u64);
    let (mut loop_squares, mut signature_slots, mut live_across) = (0u64, 0u64, 0u64);
    let mut work = live_locals::MAX_WORK;
    let signatures_checked = |signature_slots: u64, code_bytes: u64| {
        let allowed = MIN_SIGNATURE_SLOTS_ALLOWED.max(code_bytes);
        if signature_slots > allowed {
            return Err(format!(
                "the functions' signatures take more than {allowed} slots of values together (4 bytes each; \
                 one per byte of code, or {MIN_SIGNATURE_SLOTS_ALLOWED} for less code): each function that \
                 may be called from outside gets a trampoline moving them, too many to compile"
            ));
        }
        Ok(())
    };
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return Ok(()) };
        match payload {
            Payload::Version { encoding, .. } => {
                stack.push(matches!(encoding, Encoding::Module).then(Module::default));
            }
            Payload::End(_) => {
                if let Some(Some(module)) = stack.pop() {
                    let slots_of = |&ty: &u32| module.type_slots.get(ty as usize).copied().unwrap_or(0);
                    // Defined ones: an import's trampoline is made once for its type.
                    let defined = module.function_types.iter().skip(module.imported_functions as usize);
                    let signatures: u64 = defined.map(slots_of).sum();
                    signature_slots = signature_slots.saturating_add(signatures);
                    signatures_checked(signature_slots, code_bytes)?;
                    table_entries =
                        (module.tables.iter()).fold(table_entries, |sum, &(_, image)| sum.saturating_add(image));
                    if table_entries > MAX_TABLE_IMAGE_ENTRIES {
                        return Err(format!(
                            "the tables' initial values and element segments fill more than \
                             {MAX_TABLE_IMAGE_ENTRIES} table entries, which would be precomputed when compiling"
                        ));
                    }
                }
            }
            Payload::TypeSection(reader) => {
                let mut module = stack.last_mut().and_then(Option::as_mut);
                for group in reader.into_iter().flatten() {
                    for ty in group.types() {
                        // 0 for a type that is no function's.
                        let mut taken = 0;
                        if let CompositeInnerType::Func(func) = &ty.composite_type.inner {
                            for (values, what, verb) in [
                                (func.params(), "parameters", "take"),
                                (func.results(), "results", "return"),
                            ] {
                                let these: u64 = values.iter().map(|&ty| slots(ty)).sum();
                                if these > MAX_SIGNATURE_SLOTS {
                                    return Err(format!(
                                        "a function type has {} {what} taking {these} slots (4 bytes each), more \
                                         than the {MAX_SIGNATURE_SLOTS} a function may {verb}",
                                        values.len()
                                    ));
                                }
                                taken += these;
                            }
                        }
                        if let Some(module) = module.as_deref_mut() {
                            module.type_slots.push(taken);
                            module.types.push(ty.clone());
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                let Some(Some(module)) = stack.last_mut() else { continue };
                for import in reader.into_imports().flatten() {
                    match import.ty {
                        TypeRef::Table(_) => module.imported_tables = module.imported_tables.saturating_add(1),
                        TypeRef::Func(ty) => {
                            module.function_types.push(ty);
                            module.imported_functions += 1;
                        }
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                let Some(Some(module)) = stack.last_mut() else { continue };
                module.function_types.extend(reader.into_iter().flatten());
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
            Payload::CodeSectionStart { size, .. } => code_bytes = code_bytes.saturating_add(u64::from(size)),
            Payload::CodeSectionEntry(body) => {
                let Ok(reader) = body.get_locals_reader() else { continue };
                let mut locals = 0u64;
                for (count, ty) in reader.into_iter().flatten() {
                    local_slots = local_slots.saturating_add(u64::from(count) * slots(ty));
                    locals = locals.saturating_add(u64::from(count));
                }
                let allowed = MIN_LOCAL_SLOTS_ALLOWED.max(LOCAL_SLOTS_PER_CODE_BYTE.saturating_mul(code_bytes));
                if local_slots > allowed {
                    return Err(format!(
                        "the functions declare more than {allowed} slots of locals together (4 bytes each; \
                         {LOCAL_SLOTS_PER_CODE_BYTE} per byte of code, or {MIN_LOCAL_SLOTS_ALLOWED} for less code), \
                         too many to compile"
                    ));
                }
                let Some(Some(module)) = stack.last_mut() else { continue };
                let index = module.imported_functions + module.bodies;
                module.bodies += 1;
                let counts = operator_counts(module, &body, index, locals, &mut work)?;
                call_slots = call_slots.saturating_add(counts.call_slots);
                live_across = live_across.saturating_add(counts.live_across);
                let allowed = MIN_LIVE_ACROSS_ALLOWED.max(LIVE_ACROSS_PER_CODE_BYTE.saturating_mul(code_bytes));
                if live_across > allowed {
                    return Err(format!(
                        "the functions hold more than {allowed} values live across their calls and blocks together \
                         (counted as for one function; {LIVE_ACROSS_PER_CODE_BYTE} per byte of code, or \
                         {MIN_LIVE_ACROSS_ALLOWED} for less code): the register allocator handles each value at \
                         each, too many to compile"
                    ));
                }
                loop_squares = loop_squares.saturating_add(counts.loops.saturating_mul(counts.loops));
                let allowed = MIN_LOOP_SQUARES_ALLOWED.max(LOOP_SQUARES_PER_CODE_BYTE.saturating_mul(code_bytes));
                if loop_squares > allowed {
                    return Err(format!(
                        "function {index} has {} loops: Cranelift's compile time grows with the square of a \
                         function's loops, and the functions' squares add up to more than {allowed} (or one per \
                         byte of code)",
                        counts.loops
                    ));
                }
                let allowed = MIN_CALL_SLOTS_ALLOWED.max(code_bytes);
                if call_slots > allowed {
                    return Err(format!(
                        "the functions' calls pass and return more than {allowed} slots of values together (4 \
                         bytes each; one per byte of code, or {MIN_CALL_SLOTS_ALLOWED} for less code), too many \
                         to compile"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// What one function's operators hold that costs the compiler beyond their size.
#[derive(Default)]
struct Counts {
    /// Slots of values its calls pass and return (each call counts its callee's parameters and
    /// results).
    call_slots: u64,
    loops: u64,
    /// Values live across its calls and blocks (see [`MAX_LIVE_ACROSS_PER_FUNCTION`]).
    live_across: u64,
}

/// One function's [`Counts`], after refusing a function whose blocks, or calls, take and return
/// too many slots. Malformed operators end the count: the validator says why.
fn operator_counts(
    module: &Module,
    body: &FunctionBody,
    index: u64,
    locals: u64,
    work: &mut u64,
) -> Result<Counts, String> {
    let mut counts = Counts::default();
    let Ok(mut operators) = body.get_operators_reader() else {
        return Ok(counts);
    };
    let type_slots = |ty: u32| module.type_slots.get(ty as usize).copied().unwrap_or(0);
    let (mut block_slots, mut call_slots) = (0u64, 0u64);
    let mut stack = OperandStack::new(module, index);
    let params = stack
        .arity_of_function(index)
        .map_or(0, |(params, _)| u64::from(params));
    let mut liveness = LiveLocals::new(u32::try_from(params.saturating_add(locals)).unwrap_or(u32::MAX));
    while !operators.eof() {
        let operator = operators.read();
        if let Ok(operator) = &operator {
            let across = stack.read(operator);
            liveness.read(operator, across.call.is_some());
            let live = (across.call.unwrap_or(0)).saturating_add(across.edge.saturating_mul(EDGE_WEIGHT));
            counts.add_live_across(live, index)?;
        }
        match operator {
            Ok(Operator::Loop { blockty }) => {
                counts.loops += 1;
                if stack.loops_open > MAX_LOOP_NESTING {
                    return Err(format!(
                        "function {index} nests more than {MAX_LOOP_NESTING} loops: Cranelift's compile time grows \
                         with the cube of their depth"
                    ));
                }
                block_slots += block_type_slots(blockty, type_slots);
            }
            Ok(Operator::Block { blockty } | Operator::If { blockty }) => {
                block_slots += block_type_slots(blockty, type_slots);
            }
            Ok(Operator::TryTable { try_table }) => block_slots += block_type_slots(try_table.ty, type_slots),
            Ok(Operator::Call { function_index } | Operator::ReturnCall { function_index }) => {
                let ty = module.function_types.get(function_index as usize);
                call_slots += ty.map_or(0, |&ty| type_slots(ty));
            }
            Ok(
                Operator::CallIndirect { type_index, .. }
                | Operator::ReturnCallIndirect { type_index, .. }
                | Operator::CallRef { type_index }
                | Operator::ReturnCallRef { type_index },
            ) => call_slots += type_slots(type_index),
            Ok(_) => continue,
            Err(_) => break,
        }
        if block_slots > MAX_BLOCK_SLOTS_PER_FUNCTION {
            return Err(format!(
                "function {index}'s blocks take and return more than {MAX_BLOCK_SLOTS_PER_FUNCTION} slots of values \
                 together (4 bytes each), too many to compile"
            ));
        }
        if call_slots > MAX_CALL_SLOTS_PER_FUNCTION {
            return Err(format!(
                "function {index}'s calls pass and return more than {MAX_CALL_SLOTS_PER_FUNCTION} slots of values \
                 together (4 bytes each), too many to compile"
            ));
        }
    }
    counts.call_slots = call_slots;
    let Some(locals) = liveness.across(work) else {
        return Err(format!(
            "function {index} has too many locals and blocks to tell which locals its calls and blocks \
             hold live (the input's functions together) within {} words of work",
            live_locals::MAX_WORK
        ));
    };
    counts.add_live_across(locals, index)?;
    Ok(counts)
}

/// The height of a function's operand stack as its operators are read, enough to tell how many
/// values each call leaves below its arguments; and what [`Operator::operator_arity`] needs to
/// know of the module and the blocks. Code after a branch, which the compiler skips, counts
/// nothing. An operator whose arity is unknown (one the engine refuses) moves nothing.
struct OperandStack<'m> {
    module: &'m Module,
    /// Each open block: its type, its kind, and the stack's height below its parameters; the
    /// function's body first.
    frames: Vec<(BlockType, FrameKind, u64)>,
    height: u64,
    /// How many of the open blocks are loops.
    loops_open: u64,
}

impl<'m> OperandStack<'m> {
    fn new(module: &'m Module, function: u64) -> Self {
        let ty = u32::try_from(function)
            .ok()
            .and_then(|function| module.function_types.get(function as usize));
        let body = ty.map_or(BlockType::Empty, |&ty| BlockType::FuncType(ty));
        OperandStack {
            module,
            frames: vec![(body, FrameKind::Block, 0)],
            height: 0,
            loops_open: 0,
        }
    }

    fn arity_of_function(&self, function: u64) -> Option<(u32, u32)> {
        let ty = self.type_index_of_function(u32::try_from(function).ok()?)?;
        self.sub_type_arity(self.sub_type_at(ty)?)
    }

    /// The height below the innermost block's parameters.
    fn base(&self) -> u64 {
        self.frames.last().map_or(0, |&(_, _, base)| base)
    }

    fn open(&mut self, ty: BlockType, kind: FrameKind) -> Across {
        let (params, _) = self.block_type_arity(ty).unwrap_or((0, 0));
        let base = self.height.saturating_sub(u64::from(params)).max(self.base());
        self.frames.push((ty, kind, base));
        self.loops_open += u64::from(kind == FrameKind::Loop);
        Across::edge(base)
    }

    /// Moves the stack past `operator`, and says what stays live across it.
    fn read(&mut self, operator: &Operator) -> Across {
        match operator {
            Operator::Block { blockty } => return self.open(*blockty, FrameKind::Block),
            Operator::Loop { blockty } => return self.open(*blockty, FrameKind::Loop),
            Operator::TryTable { try_table } => return self.open(try_table.ty, FrameKind::TryTable),
            Operator::If { blockty } => {
                self.height = self.height.saturating_sub(1).max(self.base());
                return self.open(*blockty, FrameKind::If);
            }
            Operator::Else => {
                let Some(&(ty, _, base)) = self.frames.last() else {
                    return Across::default();
                };
                let (params, _) = self.block_type_arity(ty).unwrap_or((0, 0));
                self.height = base + u64::from(params);
                if let Some(frame) = self.frames.last_mut() {
                    frame.1 = FrameKind::Else;
                }
                return Across::edge(base);
            }
            Operator::End => {
                let Some((ty, kind, base)) = self.frames.pop() else {
                    return Across::default();
                };
                self.loops_open -= u64::from(kind == FrameKind::Loop);
                let (_, results) = self.block_type_arity(ty).unwrap_or((0, 0));
                self.height = base + u64::from(results);
                return Across::edge(base);
            }
            // Each target is an edge the values below the index go along: 10,000 targets of two
            // blocks with 4,000 values below (128 KB) took Cranelift 35 s when one edge counted.
            Operator::BrTable { targets } => {
                let below = self.height.saturating_sub(1).max(self.base());
                self.height = self.base();
                return Across::edge(below.saturating_mul(u64::from(targets.len()) + 1));
            }
            Operator::Br { .. } => {
                let below = self.height;
                self.height = self.base();
                return Across::edge(below);
            }
            // Nothing on the stack outlives these: what follows is unreachable.
            _ if live_locals::ends_flow(operator) => {
                self.height = self.base();
                return Across::default();
            }
            _ => {}
        }
        let (pops, pushes) = operator.operator_arity(self).unwrap_or((0, 0));
        let below = self.height.saturating_sub(u64::from(pops)).max(self.base());
        self.height = below + u64::from(pushes);
        match operator {
            Operator::Call { .. } | Operator::CallRef { .. } => Across {
                call: Some(below),
                edge: 0,
            },
            // Each compiled to a call of one of wasmtime's runtime functions, some behind a branch
            // (a table's lazily made entries, an indirect call's): 10,000 `table.get`s, each above
            // the ones before (60 KB), took Cranelift 57 s and 2.2 GB when only calls counted.
            _ if live_locals::calls_behind_a_branch(operator) => Across {
                call: Some(below),
                edge: below,
            },
            Operator::MemoryGrow { .. }
            | Operator::MemoryFill { .. }
            | Operator::MemoryCopy { .. }
            | Operator::MemoryInit { .. }
            | Operator::DataDrop { .. }
            | Operator::TableGrow { .. }
            | Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. }
            | Operator::ElemDrop { .. }
            | Operator::RefFunc { .. }
            | Operator::MemoryAtomicNotify { .. }
            | Operator::MemoryAtomicWait32 { .. }
            | Operator::MemoryAtomicWait64 { .. } => Across {
                call: Some(below),
                edge: 0,
            },
            Operator::BrIf { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. } => Across::edge(below),
            _ => Across::default(),
        }
    }
}

/// What a function holds live across one operator, as the register allocator sees it.
#[derive(Default)]
struct Across {
    /// A call (of a function, or of one of wasmtime's runtime functions): the values on the
    /// operand stack below its arguments (the function's parameters and locals are live too).
    call: Option<u64>,
    /// An edge between blocks: the values on the operand stack that stay live across it.
    edge: u64,
}

impl Counts {
    fn add_live_across(&mut self, live: u64, index: u64) -> Result<(), String> {
        self.live_across = self.live_across.saturating_add(live);
        if self.live_across > MAX_LIVE_ACROSS_PER_FUNCTION {
            return Err(format!(
                "function {index} holds more than {MAX_LIVE_ACROSS_PER_FUNCTION} values live across its calls \
                 and blocks together (at each call, the locals live across it and the values on the operand \
                 stack below its arguments; at each edge between blocks, {EDGE_WEIGHT} for each value on the \
                 operand stack and {} for each live local, {} more through a loop): the register allocator \
                 handles each value at each, too many to compile",
                live_locals::EDGE_WEIGHT,
                live_locals::LOOP_WEIGHT
            ));
        }
        Ok(())
    }
}

impl Across {
    fn edge(values: u64) -> Self {
        Across {
            call: None,
            edge: values,
        }
    }
}

impl ModuleArity for OperandStack<'_> {
    fn sub_type_at(&self, type_idx: u32) -> Option<&SubType> {
        self.module.types.get(type_idx as usize)
    }

    fn tag_type_arity(&self, _at: u32) -> Option<(u32, u32)> {
        None
    }

    fn type_index_of_function(&self, function_idx: u32) -> Option<u32> {
        self.module.function_types.get(function_idx as usize).copied()
    }

    fn func_type_of_cont_type(&self, _c: &ContType) -> Option<&FuncType> {
        None
    }

    fn sub_type_of_ref_type(&self, _rt: &RefType) -> Option<&SubType> {
        None
    }

    fn control_stack_height(&self) -> u32 {
        u32::try_from(self.frames.len()).unwrap_or(u32::MAX)
    }

    fn label_block(&self, depth: u32) -> Option<(BlockType, FrameKind)> {
        let index = self.frames.len().checked_sub(1 + depth as usize)?;
        self.frames.get(index).map(|&(ty, kind, _)| (ty, kind))
    }
}

/// The slots a block of type `ty` takes and returns.
fn block_type_slots(ty: BlockType, type_slots: impl Fn(u32) -> u64) -> u64 {
    match ty {
        BlockType::Empty => 0,
        BlockType::Type(ty) => slots(ty),
        BlockType::FuncType(index) => type_slots(index),
    }
}

/// The 4-byte slots a local of type `ty` takes.
fn slots(ty: ValType) -> u64 {
    match ty {
        ValType::I32 | ValType::F32 => 1,
        ValType::I64 | ValType::F64 | ValType::Ref(_) => 2,
        ValType::V128 => 4,
    }
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
        assert!(refused.contains("fill more than 1048576 table entries"), "{refused}");
        // Past the table's size, or past what wasmtime precomputes, nothing is built.
        let past = "(module (table 2000000 funcref) (table 8 funcref) (func $f)
            (elem (table 0) (i32.const 1999999) func $f) (elem (table 1) (i32.const 7) func $f))";
        assert_eq!(check(&module(past)), Ok(()));
    }

    #[test]
    fn the_functions_signatures_take_at_most_one_slot_per_byte_of_code_together() {
        // 128 `i32`s in and out: 256 slots a function.
        let functions = |count: usize| {
            module(&format!(
                "(module (type $t (func (param {0}) (result {0}))) (table {count} funcref) {1}
                    (elem (i32.const 0) func {2}))",
                "i32 ".repeat(128),
                "(func (type $t) unreachable)".repeat(count),
                (0..count).map(|index| format!("{index} ")).collect::<String>(),
            ))
        };
        assert_eq!(check(&functions(256)), Ok(()));
        let refused = check(&functions(257)).unwrap_err();
        assert!(refused.contains("signatures take more than 65536 slots"), "{refused}");
        // Imported functions do not: their trampolines are made once for each type.
        let imported = format!(
            "(module (type $t (func (param {}))) {})",
            "i64 ".repeat(64),
            "(import \"m\" \"f\" (func (type $t)))".repeat(513)
        );
        assert_eq!(check(&module(&imported)), Ok(()));
    }

    #[test]
    fn a_function_type_takes_and_returns_at_most_128_slots_each() {
        let results = |ty: &str, count: usize| {
            module(&format!(
                "(module (type (func (result {}))))",
                format!("{ty} ").repeat(count)
            ))
        };
        assert_eq!(check(&results("i32", 128)), Ok(()));
        assert_eq!(check(&results("v128", 32)), Ok(()));
        let refused = check(&results("v128", 33)).unwrap_err();
        assert!(refused.contains("33 results taking 132 slots"), "{refused}");
        assert!(check(&results("i64", 1000)).is_err());
        let params = |count: usize| module(&format!("(module (type (func (param {}))))", "i64 ".repeat(count)));
        assert_eq!(check(&params(64)), Ok(()));
        let refused = check(&params(65)).unwrap_err();
        assert!(refused.contains("65 parameters taking 130 slots"), "{refused}");
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
    fn declared_locals_are_bounded_by_their_size_and_the_code() {
        let function = "(func (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64))";
        let few = format!("(module {})", function.repeat(10));
        assert_eq!(check(&module(&few)), Ok(()));
        // 50,000 locals in a body of a few bytes, 21 times: 1,050,000 slots in some 200 bytes.
        let crowded = |ty: &str, times: usize| {
            let function = format!("(func (local {}))", format!("{ty} ").repeat(50_000));
            module(&format!("(module {})", function.repeat(times)))
        };
        assert_eq!(check(&crowded("i32", 20)), Ok(()));
        let refused = check(&crowded("i32", 21)).unwrap_err();
        assert!(refused.contains("more than 1048576 slots of locals"), "{refused}");
        // A v128 takes four slots: six such functions are over.
        assert!(check(&crowded("v128", 6)).is_err());
        // A custom section buys no room: only the code counts.
        let mut padded = crowded("i32", 21);
        padded.extend_from_slice(&[0, 0x80, 0x80, 0x40, 1, b'x']);
        padded.resize(padded.len() + (1 << 20) - 2, 0);
        assert!(check(&padded).is_err());
    }

    #[test]
    fn a_function_s_blocks_take_and_return_at_most_4096_slots() {
        let ifs = |ty: &str, count: usize| {
            module(&format!(
                "(module (type $two (func (result i32 i32))) (func (param i32) (result i32) i32.const 0 {}))",
                format!("local.get 0 if (result {ty}) unreachable else unreachable end drop ").repeat(count)
            ))
        };
        assert_eq!(check(&ifs("i32", 4096)), Ok(()));
        let refused = check(&ifs("i32", 4097)).unwrap_err();
        assert!(
            refused.contains("function 0's blocks take and return more than 4096 slots"),
            "{refused}"
        );
        assert!(check(&ifs("v128", 1025)).is_err());
        // A block's type by index counts its parameters and its results; functions are numbered
        // after the imported ones.
        let typed = |count: usize| {
            module(&format!(
                "(module (import \"e\" \"f\" (func)) (type $p (func (param {0}) (result {0}))) (func)
                 (func (result {0}) {1} {2}))",
                "i32 ".repeat(128),
                "i32.const 0 ".repeat(128),
                "block (type $p) end ".repeat(count)
            ))
        };
        assert_eq!(check(&typed(16)), Ok(()));
        let refused = check(&typed(17)).unwrap_err();
        assert!(refused.contains("function 2's blocks"), "{refused}");
        // Untyped blocks carry nothing.
        let plain = module(&format!("(module (func {}))", "block end ".repeat(20_000)));
        assert_eq!(check(&plain), Ok(()));
    }

    #[test]
    fn loops_are_bounded_by_the_sum_of_their_squares() {
        let function = |loops: usize| format!("(func {})", "(loop) ".repeat(loops));
        let input = |functions: &[usize]| {
            module(&format!(
                "(module {})",
                functions.iter().map(|&loops| function(loops)).collect::<String>()
            ))
        };
        assert_eq!(check(&input(&[2048])), Ok(()));
        let refused = check(&input(&[2049])).unwrap_err();
        assert!(refused.starts_with("function 0 has 2049 loops: "), "{refused}");
        // 1,024 squared is a quarter of the bound: the fifth such function is over.
        assert_eq!(check(&input(&[1024; 4])), Ok(()));
        let refused = check(&input(&[1024, 1024, 1024, 1024, 1])).unwrap_err();
        assert!(refused.starts_with("function 4 has 1 loops: "), "{refused}");
        // Nested loops count alike.
        let nested = module(&format!(
            "(module (func {}{}))",
            "(loop ".repeat(2049),
            ")".repeat(2049)
        ));
        assert!(check(&nested).is_err());
    }

    #[test]
    fn values_live_across_calls_are_bounded_per_function_and_by_the_code() {
        // Each call made above the results of those before it: call k has k values below it.
        let stacked = |calls: usize| {
            module(&format!(
                "(module (func $g (result i32) i32.const 1) (func (result i32) {} {}))",
                "call $g ".repeat(calls),
                "i32.add ".repeat(calls - 1)
            ))
        };
        // 8,192 calls: 33.5 million values below them together, just within the bound.
        assert_eq!(check(&stacked(8192)), Ok(()));
        let refused = check(&stacked(8193)).unwrap_err();
        assert!(
            refused.contains("function 1 holds more than 33554432 values live across its calls"),
            "{refused}"
        );
        // Locals set before the calls and read after them are live across each: 5,793 locals and
        // 5,793 calls are over. Never read, they hold nothing.
        let locals = |locals: usize, calls: usize, read: bool| {
            let sets: String = (1..=locals)
                .map(|i| format!("(local.set {i} (local.get 0)) "))
                .collect();
            let reads: String = (1..=locals).map(|i| format!("local.get {i} drop ")).collect();
            module(&format!(
                "(module (func $g) (func (param i32) (local {}) {sets} {} {}))",
                "i32 ".repeat(locals),
                "call $g ".repeat(calls),
                if read { reads.as_str() } else { "" }
            ))
        };
        assert_eq!(check(&locals(5000, 5000, true)), Ok(()));
        assert!(check(&locals(5793, 5793, true)).is_err());
        assert_eq!(check(&locals(5793, 5793, false)), Ok(()));
        // A call's own arguments are not below it (10,000 calls each taking the last one's
        // result hold nothing across them), nor the values a branch leaves behind.
        let chained = module(&format!(
            "(module (func $h (param i32) (result i32) local.get 0) (func (result i32) i32.const 0 {}))",
            "call $h ".repeat(10_000)
        ));
        assert_eq!(check(&chained), Ok(()));
        let branched = module(&format!(
            "(module (func $g (result i32) i32.const 1) (func {}))",
            format!("block {} br 0 end call $g drop ", "i32.const 1 ".repeat(1000)).repeat(300)
        ));
        assert_eq!(check(&branched), Ok(()));
        // What wasmtime compiles to a call of its own counts as a call: `memory.grow`, and a
        // `table.get` (behind a branch, so its values count at an edge too: 10,000 took 57 s).
        let libcalls = |push: &str, count: usize| {
            module(&format!(
                "(module (memory 1) (table 1 funcref) (func (result i32) {} {}))",
                push.repeat(count),
                "i32.add ".repeat(count - 1)
            ))
        };
        let grows = "i32.const 0 memory.grow ";
        assert_eq!(check(&libcalls(grows, 8192)), Ok(()));
        assert!(check(&libcalls(grows, 8193)).is_err());
        let gets = "i32.const 0 table.get 0 ref.is_null ";
        // 17 a value below each (1 at the call, 16 at the edge): 1,986 are just within.
        assert_eq!(check(&libcalls(gets, 1986)), Ok(()));
        let refused = check(&libcalls(gets, 1988)).unwrap_err();
        assert!(refused.contains("values live across its calls and blocks"), "{refused}");
        // Each target of a br_table is an edge: 4,000 values below 10 tables of 10,000 targets
        // (128 KB) took 35 s.
        let tables = |values: usize, targets: usize| {
            module(&format!(
                "(module (func (param i32) (result i32) {} {} {}))",
                "local.get 0 ".repeat(values),
                format!("(block (block local.get 0 br_table {} 0))", "0 1 ".repeat(targets / 2)).repeat(10),
                "i32.add ".repeat(values - 1)
            ))
        };
        assert_eq!(check(&tables(100, 1000)), Ok(()));
        assert!(check(&tables(4000, 10_000)).is_err());
        // Values left on the operand stack across the edges of blocks count 16 at each.
        let blocks = |count: usize| {
            module(&format!(
                "(module (func (param i32) (result i32) {} {}))",
                "local.get 0 block end ".repeat(count),
                "i32.add ".repeat(count - 1)
            ))
        };
        assert_eq!(check(&blocks(1400)), Ok(()));
        assert!(check(&blocks(1500)).is_err());
        // Spread over functions, within each one's bound, the input's are bounded by its code.
        let spread = module(&format!(
            "(module (func $g) {})",
            format!(
                "(func (local {}) {} {} {})",
                "i32 ".repeat(4000),
                (0..4000)
                    .map(|i| format!("(local.set {i} (i32.const 1)) "))
                    .collect::<String>(),
                "call $g ".repeat(4000),
                (0..4000).map(|i| format!("local.get {i} drop ")).collect::<String>()
            )
            .repeat(3)
        ));
        let refused = check(&spread).unwrap_err();
        assert!(refused.contains("32 per byte of code"), "{refused}");
    }

    #[test]
    fn locals_live_across_blocks_and_loops_are_bounded() {
        // K locals loaded, then N blocks (or loops) that each branch, then the K summed: Cranelift
        // took 2.4 s and 720 MB for 4,000 across 4,000 blocks, 2.6 s and 390 MB for 2,000 through
        // 1,000 loops.
        let shape = |locals: usize, count: usize, each: &str| {
            let loads: String = (1..=locals)
                .map(|i| format!("(local.set {i} (i32.load offset={} (local.get 0))) ", (i % 1000) * 4))
                .collect();
            let sum: String = (2..=locals).map(|i| format!("local.get {i} i32.add ")).collect();
            module(&format!(
                "(module (memory 1) (func (param i32) (result i32) (local {}) {loads} {} local.get 1 {sum}))",
                "i32 ".repeat(locals),
                each.repeat(count)
            ))
        };
        let block = "(block (br_if 0 (local.get 0)) (local.set 0 (i32.const 1))) ";
        let looped = "(loop (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br_if 0 (local.get 0))) ";
        assert_eq!(check(&shape(1000, 1000, block)), Ok(()));
        let refused = check(&shape(4000, 4000, block)).unwrap_err();
        assert!(
            refused.contains("4 for each live local, 48 more through a loop"),
            "{refused}"
        );
        assert_eq!(check(&shape(500, 500, looped)), Ok(()));
        assert!(check(&shape(2000, 1000, looped)).is_err());
        // Locals set and read within each block are live across none of the others.
        let own: String = (1..=4000)
            .map(|i| format!("(block (local.set {i} (i32.const 1)) (br_if 0 (local.get 0)) (drop (local.get {i}))) "))
            .collect();
        let local_per_block = module(&format!(
            "(module (func (param i32) (local {}) {own}))",
            "i32 ".repeat(4000)
        ));
        assert_eq!(check(&local_per_block), Ok(()));
    }

    #[test]
    fn loops_nest_at_most_256_deep() {
        let nested = |depth: usize| {
            module(&format!(
                "(module (func (param i32) {} (br_if 0 (local.get 0)) {}))",
                "(loop ".repeat(depth),
                ")".repeat(depth)
            ))
        };
        assert_eq!(check(&nested(256)), Ok(()));
        let refused = check(&nested(257)).unwrap_err();
        assert!(refused.contains("function 0 nests more than 256 loops"), "{refused}");
        // Side by side they are not nested.
        let side = module(&format!(
            "(module (func (param i32) {}))",
            "(loop (br_if 0 (local.get 0))) ".repeat(300)
        ));
        assert_eq!(check(&side), Ok(()));
    }

    #[test]
    fn calls_pass_and_return_a_bounded_number_of_slots() {
        let type_of = |count: usize| format!("(type $t (func (param {0}) (result {0})))", "i32 ".repeat(count));
        let callee = format!("(func $g (type $t) {})", "local.get 0 ".repeat(128));
        let caller = |calls: usize| {
            format!(
                "(func (type $t) {} {})",
                "local.get 0 ".repeat(128),
                "call $g ".repeat(calls)
            )
        };
        let calls = |callers: &[usize]| {
            let callers: String = callers.iter().map(|&count| caller(count)).collect();
            module(&format!("(module {} {callee} {callers})", type_of(128)))
        };
        // 256 slots a call: 256 calls in one function are the most.
        assert_eq!(check(&calls(&[256])), Ok(()));
        let refused = check(&calls(&[257])).unwrap_err();
        assert!(
            refused.contains("function 1's calls pass and return more than 65536 slots"),
            "{refused}"
        );
        // Spread over functions, the input's calls are bounded by the size of its code.
        let refused = check(&calls(&[200, 200])).unwrap_err();
        assert!(refused.contains("one per byte of code"), "{refused}");
        // Indirect calls count their type.
        let indirect = format!(
            "(module {} (table 1 funcref) (func (type $t) {} {}))",
            type_of(128),
            "local.get 0 ".repeat(128),
            "i32.const 0 call_indirect (type $t) ".repeat(257)
        );
        assert!(check(&module(&indirect)).is_err());
        // A few arguments a call, as real code passes them, stay far from the bounds.
        let small = format!(
            "(module (func $f (param i32) (result i32) local.get 0) (func (result i32) i32.const 1 {}))",
            "call $f ".repeat(30_000)
        );
        assert_eq!(check(&module(&small)), Ok(()));
    }
}
