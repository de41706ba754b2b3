//! Splits a guest's large `memory.fill` and `memory.copy` into chunks with a loop head between
//! them, so that its deadline and abort stop it between chunks.
//!
//! wasmtime checks epochs (our deadlines and aborts) at function entries and loop heads only, and
//! runs a bulk memory instruction to its end once started (wasmtime#14047: its checks inside such
//! operations were withdrawn as unsafe). One `memory.fill` of 4 GiB, a C `memset` compiled by
//! clang, ran 5–8 s past a 50 ms deadline, holding the event loop under `callSync` (probe Z55).
//! Each such instruction is rewritten before compiling, unless its length is a constant of at
//! most [`CHUNK`] (short, and compiled inline by Cranelift): its operands go into locals, and a
//! length of at most [`CHUNK`] runs the instruction as it was, one comparison later. A larger one
//! calls a helper function added after the module's own (one per kind of instruction and
//! memories used), which checks the bounds first (an access out of bounds still traps before
//! writing anything, as the instruction does) and does the work [`CHUNK`] bytes at a time in a
//! loop, backwards for a copy to a higher address in the same memory (as `memmove` does). Fuel is
//! charged per chunk, as wasmtime charges by size.
//!
//! The type, function and code sections grow; every other section, function index and name
//! stays. A function with such an instruction gets six locals (three i32, three i64), or, where
//! that would pass the bound on locals, calls the helper for every length.

use wasmparser::{
    BinaryReader, CompositeInnerType, FunctionSectionReader, ImportSectionReader, MemorySectionReader, Operator,
    TypeRef, TypeSectionReader,
};

/// Most bytes one `memory.fill` or `memory.copy` writes between two loop heads: about 1 ms of
/// work at the worst (memory the process touches for the first time, 0.5–2 s per GiB here).
pub const CHUNK: u64 = 1 << 20;

/// A binary's section id of a core module inside a component, and of a nested component.
const COMPONENT_CORE_MODULE_SECTION: u8 = 1;
const COMPONENT_COMPONENT_SECTION: u8 = 4;
/// A core module's code section id.
const CODE_SECTION: u8 = 10;

/// `bytes` (a core module or component binary) with every `memory.fill` and `memory.copy`
/// rewritten, in every core module a component holds; `None` when there is none (or the bytes
/// are no binary).
pub fn chunked(bytes: &[u8]) -> Result<Option<Vec<u8>>, Unreadable> {
    chunked_by(bytes, CHUNK)
}

/// [`chunked`] with chunks of `chunk` bytes.
fn chunked_by(bytes: &[u8], chunk: u64) -> Result<Option<Vec<u8>>, Unreadable> {
    match crate::binary::kind(bytes) {
        Some(crate::binary::Binary::Module) => module(bytes, chunk),
        Some(crate::binary::Binary::Component) => component(bytes, chunk),
        None => Ok(None),
    }
}

/// The top-level sections of a module or component binary: (id, contents), after the header.
fn sections(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, Unreadable> {
    let mut reader = BinaryReader::new(bytes.get(8..).unwrap_or_default(), 8);
    let mut found = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        found.push((id, reader.read_bytes(size)?));
    }
    Ok(found)
}

/// Appends a section to `out`.
fn push_section(out: &mut Vec<u8>, id: u8, contents: &[u8]) {
    out.push(id);
    push_u32(out, contents.len() as u32);
    out.extend_from_slice(contents);
}

fn component(bytes: &[u8], chunk: u64) -> Result<Option<Vec<u8>>, Unreadable> {
    let mut out = bytes[..8].to_vec();
    let mut changed = false;
    for (id, contents) in sections(bytes)? {
        let rewritten = match id {
            COMPONENT_CORE_MODULE_SECTION => module(contents, chunk)?,
            COMPONENT_COMPONENT_SECTION => component(contents, chunk)?,
            _ => None,
        };
        changed |= rewritten.is_some();
        push_section(&mut out, id, rewritten.as_deref().unwrap_or(contents));
    }
    Ok(changed.then_some(out))
}

/// What the rewrite needs to know of a module besides its code.
#[derive(Default)]
struct Shape {
    /// Each memory's index width and page size (log 2), imported ones first.
    memories: Vec<Memory>,
    /// Each type's parameter count (`None` for a type that is not a function's).
    params: Vec<Option<u32>>,
    /// Functions imported.
    imported: u32,
    /// Each defined function's type.
    defined: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Memory {
    wide: bool,
    page_log2: u32,
}

impl Shape {
    /// The shape of the module whose top-level sections are `sections`.
    fn of(sections: &[(u8, &[u8])]) -> Result<Shape, Unreadable> {
        let mut shape = Shape::default();
        for &(id, contents) in sections {
            let reader = BinaryReader::new(contents, 0);
            match id {
                TYPE_SECTION => {
                    for group in TypeSectionReader::new(reader)? {
                        for ty in group?.types() {
                            shape.params.push(match &ty.composite_type.inner {
                                CompositeInnerType::Func(func) => Some(func.params().len() as u32),
                                _ => None,
                            });
                        }
                    }
                }
                IMPORT_SECTION => {
                    for import in ImportSectionReader::new(reader)?.into_imports() {
                        match import?.ty {
                            TypeRef::Memory(memory) => shape.memories.push(Memory::of(&memory)),
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                                shape.imported = shape.imported.checked_add(1).ok_or(Unreadable)?
                            }
                            _ => {}
                        }
                    }
                }
                FUNCTION_SECTION => {
                    for ty in FunctionSectionReader::new(reader)? {
                        shape.defined.push(ty?);
                    }
                }
                MEMORY_SECTION => {
                    for memory in MemorySectionReader::new(reader)? {
                        shape.memories.push(Memory::of(&memory?));
                    }
                }
                _ => {}
            }
        }
        Ok(shape)
    }

    /// Types defined: the first helper's type comes after them.
    fn types(&self) -> u32 {
        self.params.len() as u32
    }

    /// Functions imported and defined: the first helper's index comes after them.
    fn functions(&self) -> Result<u32, Unreadable> {
        self.imported.checked_add(self.defined.len() as u32).ok_or(Unreadable)
    }

    fn memory(&self, index: u32) -> Result<Memory, Unreadable> {
        self.memories.get(index as usize).copied().ok_or(Unreadable)
    }
}

impl Memory {
    fn of(memory: &wasmparser::MemoryType) -> Memory {
        Memory {
            wide: memory.memory64,
            page_log2: memory.page_size_log2.unwrap_or(16),
        }
    }
}

/// Bytes the rewrite cannot read: the compiler says what is wrong with them.
#[derive(Debug)]
pub struct Unreadable;

impl From<wasmparser::BinaryReaderError> for Unreadable {
    fn from(_: wasmparser::BinaryReaderError) -> Self {
        Unreadable
    }
}

/// A core module's section ids the rewrite reads or writes.
const TYPE_SECTION: u8 = 1;
const IMPORT_SECTION: u8 = 2;
const FUNCTION_SECTION: u8 = 3;
const MEMORY_SECTION: u8 = 5;

/// A module whose bulk instructions are rewritten, with their helper functions after its own
/// (one per kind of instruction and memories used), which do the work a chunk at a time. The
/// loop is the helper's, not at each instruction: a loop at each made Cranelift 25–50 times
/// slower to compile such code, and took the compile checks' loop allowance (probe H61).
fn module(bytes: &[u8], chunk: u64) -> Result<Option<Vec<u8>>, Unreadable> {
    let sections = sections(bytes)?;
    let Some((_, code)) = sections.iter().find(|(id, _)| *id == CODE_SECTION) else {
        return Ok(None);
    };
    let shape = Shape::of(&sections)?;
    let mut helpers = Vec::new();
    let Some(code) = code_section(code, &shape, chunk, &mut helpers)? else {
        return Ok(None);
    };
    let mut out = bytes[..8].to_vec();
    for (id, contents) in &sections {
        let rewritten = match *id {
            TYPE_SECTION => {
                let signatures = helpers.iter().map(|helper| helper.signature(&shape));
                Some(appended(
                    contents,
                    signatures.collect::<Result<Vec<_>, _>>()?.into_iter(),
                )?)
            }
            FUNCTION_SECTION => {
                let types = (0..helpers.len() as u32).map(|index| {
                    let mut entry = Vec::new();
                    push_u32(&mut entry, shape.types() + index);
                    entry
                });
                Some(appended(contents, types)?)
            }
            CODE_SECTION => Some(code.clone()),
            _ => None,
        };
        push_section(&mut out, *id, rewritten.as_deref().unwrap_or(contents));
    }
    Ok(Some(out))
}

/// A section's contents (a count, then its entries) with `more` entries after its own.
fn appended(contents: &[u8], more: impl ExactSizeIterator<Item = Vec<u8>>) -> Result<Vec<u8>, Unreadable> {
    let mut reader = BinaryReader::new(contents, 0);
    let count = reader.read_var_u32()?;
    let count = count.checked_add(more.len() as u32).ok_or(Unreadable)?;
    let mut out = Vec::with_capacity(contents.len() + 16 * more.len());
    push_u32(&mut out, count);
    out.extend_from_slice(&contents[reader.current_position()..]);
    more.for_each(|entry| out.extend_from_slice(&entry));
    Ok(out)
}

/// The code section's contents with every function's bulk instructions calling their helpers,
/// and the helpers after them; `None` when no function has one.
fn code_section(
    contents: &[u8],
    shape: &Shape,
    chunk: u64,
    helpers: &mut Vec<BulkOp>,
) -> Result<Option<Vec<u8>>, Unreadable> {
    let mut reader = BinaryReader::new(contents, 0);
    let count = reader.read_var_u32()?;
    let mut bodies = Vec::with_capacity(contents.len() + 64);
    for index in 0..count as usize {
        let size = reader.read_var_u32()? as usize;
        let body = reader.read_bytes(size)?;
        let params = shape
            .defined
            .get(index)
            .and_then(|ty| shape.params.get(*ty as usize).copied().flatten())
            .ok_or(Unreadable)?;
        match function(body, params, shape, chunk, helpers)? {
            Some(rewritten) => {
                push_u32(&mut bodies, rewritten.len() as u32);
                bodies.extend_from_slice(&rewritten);
            }
            None => {
                push_u32(&mut bodies, size as u32);
                bodies.extend_from_slice(body);
            }
        }
    }
    if helpers.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(bodies.len() + 256 * helpers.len());
    push_u32(&mut out, count.checked_add(helpers.len() as u32).ok_or(Unreadable)?);
    out.extend_from_slice(&bodies);
    for helper in helpers.iter() {
        let body = helper.body(shape, chunk)?;
        push_u32(&mut out, body.len() as u32);
        out.extend_from_slice(&body);
    }
    Ok(Some(out))
}

/// A bulk instruction, which its helper does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BulkOp {
    Fill { mem: u32 },
    Copy { dst: u32, src: u32 },
}

impl BulkOp {
    /// Whether each operand is an i64: the address (or destination), the value (or source), and
    /// the length, which is an i64 only when both memories are.
    fn widths(&self, shape: &Shape) -> Result<[bool; 3], Unreadable> {
        Ok(match *self {
            BulkOp::Fill { mem } => {
                let wide = shape.memory(mem)?.wide;
                [wide, false, wide]
            }
            BulkOp::Copy { dst, src } => {
                let (to, from) = (shape.memory(dst)?.wide, shape.memory(src)?.wide);
                [to, from, to && from]
            }
        })
    }

    /// The helper's function type, as a type section entry: the instruction's operands.
    fn signature(&self, shape: &Shape) -> Result<Vec<u8>, Unreadable> {
        let [a, b, len] = self.widths(shape)?.map(|wide| if wide { 0x7E } else { 0x7F });
        Ok(vec![0x60, 3, a, b, len, 0])
    }

    /// The helper's body: no locals; its parameters are the instruction's operands.
    fn body(&self, shape: &Shape, chunk: u64) -> Result<Vec<u8>, Unreadable> {
        let mut out = vec![0];
        Emit { out: &mut out, chunk }.helper(*self, shape)?;
        out.push(op::END);
        Ok(out)
    }
}

/// Most locals a function may have (wasmparser's bound, which wasmtime keeps).
const MOST_LOCALS: u32 = 50_000;

/// `body` with each bulk instruction rewritten (its helper added to `helpers` when new), or
/// `None` when it has none to rewrite. The instruction stays in place for a length of at most a
/// chunk, its operands kept in six locals added to the function for the comparison; the helper
/// is called above that (only the call, where the six would pass wasmparser's bound on locals). A
/// call every time cost a Rust `sort_unstable` 23% of its time (probe of our own).
fn function(
    body: &[u8],
    params: u32,
    shape: &Shape,
    chunk: u64,
    helpers: &mut Vec<BulkOp>,
) -> Result<Option<Vec<u8>>, Unreadable> {
    // Every bulk instruction starts with the 0xFC prefix (its sub-opcode may be spelled in more
    // bytes than needed, so only the prefix is looked for): most bodies have none to parse.
    if memchr::memchr(op::PREFIX, body).is_none() {
        return Ok(None);
    }
    let function = wasmparser::FunctionBody::new(BinaryReader::new(body, 0));
    let mut locals = function.get_locals_reader()?;
    let groups = locals.get_count();
    let groups_start = locals.original_position();
    let mut declared: u32 = 0;
    for _ in 0..groups {
        let (count, _) = locals.read()?;
        declared = declared.checked_add(count).ok_or(Unreadable)?;
    }
    let first = params.checked_add(declared).ok_or(Unreadable)?;
    let inline = first.checked_add(6).is_some_and(|total| total <= MOST_LOCALS);
    let mut operators = function.get_operators_reader()?;
    let code_start = operators.original_position();
    let mut code = Vec::new();
    let mut copied = code_start;
    let mut last: Option<(usize, BulkOp)> = None;
    // The length a constant pushed just before: the bulk instruction's length operand.
    let mut constant: Option<u64> = None;
    while !operators.eof() {
        let (operator, offset) = operators.read_with_offset()?;
        if let Some((start, bulk)) = last.take() {
            let index = match helpers.iter().position(|known| *known == bulk) {
                Some(index) => index,
                None => {
                    helpers.push(bulk);
                    helpers.len() - 1
                }
            };
            let helper = shape.functions()?.checked_add(index as u32).ok_or(Unreadable)?;
            code.extend_from_slice(&body[copied..start]);
            if inline {
                let mut emit = Emit { out: &mut code, chunk };
                emit.site(bulk, shape, first, helper, &body[start..offset])?;
            } else {
                code.push(op::CALL);
                push_u32(&mut code, helper);
            }
            copied = offset;
        }
        // One whose length is a constant of at most a chunk stays as it is: it is short, and
        // Cranelift compiles a constant length inline (16 bytes: 0.7 ns, 8 ns by its libcall).
        let short = constant.is_some_and(|len| len <= chunk);
        last = match operator {
            Operator::MemoryFill { mem } if !short => Some((offset, BulkOp::Fill { mem })),
            Operator::MemoryCopy { dst_mem, src_mem } if !short => Some((
                offset,
                BulkOp::Copy {
                    dst: dst_mem,
                    src: src_mem,
                },
            )),
            _ => None,
        };
        constant = match operator {
            Operator::I32Const { value } => Some(u64::from(value as u32)),
            Operator::I64Const { value } => Some(value as u64),
            _ => None,
        };
    }
    // A body ends with `end`, never with a bulk instruction.
    if last.is_some() {
        return Err(Unreadable);
    }
    if copied == code_start {
        return Ok(None);
    }
    code.extend_from_slice(&body[copied..]);
    let mut out = Vec::with_capacity(code.len() + code_start + 8);
    if inline {
        push_u32(&mut out, groups.checked_add(2).ok_or(Unreadable)?);
        out.extend_from_slice(&body[groups_start..code_start]);
        out.extend_from_slice(&[3, 0x7F, 3, 0x7E]); // three i32 locals, three i64 locals
    } else {
        out.extend_from_slice(&body[..code_start]);
    }
    out.extend_from_slice(&code);
    Ok(Some(out))
}

/// A local the rewrite uses: a helper's parameter, or one of a site's added locals.
#[derive(Clone, Copy)]
struct Local {
    index: u32,
    wide: bool,
}

/// Opcodes the rewrite writes.
mod op {
    pub const IF: u8 = 0x04;
    pub const ELSE: u8 = 0x05;
    pub const LOOP: u8 = 0x03;
    pub const END: u8 = 0x0B;
    pub const BR_IF: u8 = 0x0D;
    pub const CALL: u8 = 0x10;
    pub const EMPTY: u8 = 0x40;
    pub const LOCAL_GET: u8 = 0x20;
    pub const LOCAL_SET: u8 = 0x21;
    pub const MEMORY_SIZE: u8 = 0x3F;
    pub const I32_CONST: u8 = 0x41;
    pub const I64_CONST: u8 = 0x42;
    pub const I32_GT_U: u8 = 0x4B;
    pub const I64_LT_U: u8 = 0x54;
    pub const I64_GT_U: u8 = 0x56;
    pub const I32_ADD: u8 = 0x6A;
    pub const I32_SUB: u8 = 0x6B;
    pub const I32_OR: u8 = 0x72;
    pub const I64_ADD: u8 = 0x7C;
    pub const I64_SUB: u8 = 0x7D;
    pub const I64_SHL: u8 = 0x86;
    pub const I64_EXTEND_I32_U: u8 = 0xAD;
    pub const PREFIX: u8 = 0xFC;
    pub const MEMORY_COPY: u32 = 10;
    pub const MEMORY_FILL: u32 = 11;
}

struct Emit<'a> {
    out: &'a mut Vec<u8>,
    chunk: u64,
}

impl Emit<'_> {
    fn byte(&mut self, byte: u8) -> &mut Self {
        self.out.push(byte);
        self
    }

    fn get(&mut self, local: Local) -> &mut Self {
        self.byte(op::LOCAL_GET);
        push_u32(self.out, local.index);
        self
    }

    fn set(&mut self, local: Local) -> &mut Self {
        self.byte(op::LOCAL_SET);
        push_u32(self.out, local.index);
        self
    }

    /// A local, widened to i64.
    fn get64(&mut self, local: Local) -> &mut Self {
        self.get(local);
        if !local.wide {
            self.byte(op::I64_EXTEND_I32_U);
        }
        self
    }

    fn chunk(&mut self, wide: bool) -> &mut Self {
        if wide {
            self.byte(op::I64_CONST);
        } else {
            self.byte(op::I32_CONST);
        }
        push_i64(self.out, self.chunk as i64);
        self
    }

    /// `local` plus or minus a chunk, into `local`.
    fn step(&mut self, local: Local, add: bool) -> &mut Self {
        let code = match (local.wide, add) {
            (false, true) => op::I32_ADD,
            (false, false) => op::I32_SUB,
            (true, true) => op::I64_ADD,
            (true, false) => op::I64_SUB,
        };
        self.get(local).chunk(local.wide).byte(code).set(local)
    }

    /// Pushes whether `local` is above a chunk (an i32).
    fn above_chunk(&mut self, local: Local) -> &mut Self {
        let code = if local.wide { op::I64_GT_U } else { op::I32_GT_U };
        self.get(local).chunk(local.wide).byte(code)
    }

    /// Pushes the byte size of memory `mem` as an i64.
    fn size(&mut self, mem: u32, memory: Memory) -> &mut Self {
        self.byte(op::MEMORY_SIZE);
        push_u32(self.out, mem);
        if !memory.wide {
            self.byte(op::I64_EXTEND_I32_U);
        }
        self.byte(op::I64_CONST);
        push_i64(self.out, memory.page_log2.into());
        self.byte(op::I64_SHL)
    }

    /// Pushes whether `len` bytes from `at` reach past memory `mem` (an i32): `at > size` or
    /// `len > size - at`, in i64, where neither overflows.
    fn out_of_bounds(&mut self, at: Local, len: Local, mem: u32, memory: Memory) -> &mut Self {
        self.size(mem, memory).get64(at).byte(op::I64_LT_U);
        self.size(mem, memory)
            .get64(at)
            .byte(op::I64_SUB)
            .get64(len)
            .byte(op::I64_LT_U);
        self.byte(op::I32_OR)
    }

    fn bulk(&mut self, code: u32, mems: &[u32]) -> &mut Self {
        self.byte(op::PREFIX);
        push_u32(self.out, code);
        for mem in mems {
            push_u32(self.out, *mem);
        }
        self
    }

    fn block(&mut self, kind: u8) -> &mut Self {
        self.byte(kind).byte(op::EMPTY)
    }

    /// A bulk instruction in a guest's function (`original`, its bytes): its operands into the
    /// function's six added locals from `first` (three i32, three i64), then the instruction
    /// itself for a length of at most a chunk, a call of the function `helper` above that.
    fn site(
        &mut self,
        bulk: BulkOp,
        shape: &Shape,
        first: u32,
        helper: u32,
        original: &[u8],
    ) -> Result<(), Unreadable> {
        let temp = |wide: bool, slot: u32| Local {
            index: first + slot + if wide { 3 } else { 0 },
            wide,
        };
        let widths = bulk.widths(shape)?;
        let [a, b, len] = [0, 1, 2].map(|slot| temp(widths[slot as usize], slot));
        // The operands are taken again in each branch: a block taking them as parameters counts
        // against the compile checks' bound on what blocks take (finding 55).
        self.set(len).set(b).set(a);
        self.above_chunk(len).block(op::IF);
        self.get(a).get(b).get(len).byte(op::CALL);
        push_u32(self.out, helper);
        self.byte(op::ELSE).get(a).get(b).get(len);
        self.out.extend_from_slice(original);
        self.byte(op::END);
        Ok(())
    }

    /// The instruction itself, its operands on the stack.
    fn instruction(&mut self, bulk: BulkOp) -> &mut Self {
        match bulk {
            BulkOp::Fill { mem } => self.bulk(op::MEMORY_FILL, &[mem]),
            BulkOp::Copy { dst, src } => self.bulk(op::MEMORY_COPY, &[dst, src]),
        }
    }

    /// The instruction on `[a b len]`, or on a chunk's length instead of `len`.
    fn operation(&mut self, bulk: BulkOp, [a, b, len]: [Local; 3], chunk: bool) -> &mut Self {
        self.get(a).get(b);
        if chunk {
            self.chunk(len.wide);
        } else {
            self.get(len);
        }
        self.instruction(bulk)
    }

    /// A helper's code: its parameters `[a b len]` are the instruction's operands (`[at value len]`
    /// of a fill, `[to from len]` of a copy).
    fn helper(&mut self, bulk: BulkOp, shape: &Shape) -> Result<(), Unreadable> {
        let widths = bulk.widths(shape)?;
        let operands = [0, 1, 2].map(|index| Local {
            index,
            wide: widths[index as usize],
        });
        let [a, b, len] = operands;
        self.above_chunk(len).block(op::IF);
        // Out of bounds: the instruction itself traps, before writing anything.
        match bulk {
            BulkOp::Fill { mem } => self.out_of_bounds(a, len, mem, shape.memory(mem)?),
            BulkOp::Copy { dst, src } => self
                .out_of_bounds(a, len, dst, shape.memory(dst)?)
                .out_of_bounds(b, len, src, shape.memory(src)?)
                .byte(op::I32_OR),
        };
        self.block(op::IF).operation(bulk, operands, false).byte(op::END);
        let forward = |emit: &mut Self| {
            emit.block(op::LOOP).operation(bulk, operands, true).step(a, true);
            if let BulkOp::Copy { .. } = bulk {
                emit.step(b, true);
            }
            emit.step(len, false)
                .above_chunk(len)
                .byte(op::BR_IF)
                .byte(0)
                .byte(op::END);
        };
        match bulk {
            BulkOp::Copy { dst, src } if dst == src => {
                // The same memory, so one width: a copy to a higher address goes from the end, as
                // `memmove` does, so that no chunk reads what an earlier one wrote.
                let (greater, add) = if a.wide {
                    (op::I64_GT_U, op::I64_ADD)
                } else {
                    (op::I32_GT_U, op::I32_ADD)
                };
                self.get(a).get(b).byte(greater).block(op::IF);
                self.block(op::LOOP).step(len, false);
                self.get(a).get(len).byte(add).get(b).get(len).byte(add);
                self.chunk(len.wide).instruction(bulk);
                self.above_chunk(len).byte(op::BR_IF).byte(0).byte(op::END);
                self.byte(op::ELSE);
                forward(self);
                self.byte(op::END);
            }
            _ => forward(self),
        }
        self.byte(op::END).operation(bulk, operands, false);
        Ok(())
    }
}

fn push_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn push_i64(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::{Config, Engine, Instance, Module, Store, Val};

    use super::chunked_by;

    /// Small chunks, so that small memories see many.
    const CHUNK: u64 = 64;
    /// Each memory's size: one page.
    const SIZE: u64 = 65536;

    fn engine() -> Engine {
        let mut config = Config::new();
        config.wasm_memory64(true).wasm_multi_memory(true);
        Engine::new(&config).unwrap()
    }

    /// Memory 0 is 32-bit, memory 1 64-bit; each starts with a pattern.
    const WAT: &str = r#"(module
      (memory $a 1) (memory $b i64 1)
      (data (memory $a) (i32.const 0) "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?")
      (data (memory $b) (i64.const 0) "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba9876543210?!ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba9876543210?!")
      (func (export "spread") (local $i i32)
        ;; The pattern over the first 4 KiB of each, so that copies move something.
        (loop $l
          (memory.copy $a $a (i32.mul (local.get $i) (i32.const 128)) (i32.const 0) (i32.const 128))
          (memory.copy $b $b (i64.extend_i32_u (i32.mul (local.get $i) (i32.const 128))) (i64.const 0) (i64.const 128))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 32)))))
      (func (export "fill_a") (param i32 i32 i32) (memory.fill $a (local.get 0) (local.get 1) (local.get 2)))
      (func (export "fill_b") (param i64 i32 i64) (memory.fill $b (local.get 0) (local.get 1) (local.get 2)))
      (func (export "copy_aa") (param i32 i32 i32) (memory.copy $a $a (local.get 0) (local.get 1) (local.get 2)))
      (func (export "copy_bb") (param i64 i64 i64) (memory.copy $b $b (local.get 0) (local.get 1) (local.get 2)))
      (func (export "copy_ab") (param i32 i64 i32) (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
      (func (export "copy_ba") (param i64 i32 i32) (memory.copy $b $a (local.get 0) (local.get 1) (local.get 2)))
      ;; Constant lengths above a chunk (64) are rewritten too.
      (func (export "fill_big") (param i32) (memory.fill $a (local.get 0) (i32.const 0x43) (i32.const 200)))
      (func (export "copy_big") (param i64 i64) (memory.copy $b $b (local.get 0) (local.get 1) (i64.const 200)))
      ;; With a param of its own and locals before the new ones, and the operands from a block.
      (func (export "nested") (param $n i32) (local i64 i32)
        (block (result i32)
          (memory.fill $a (i32.const 8) (i32.const 0x55) (local.get $n))
          (local.get $n))
        (drop)))"#;

    /// What a call did: whether it trapped, and both memories after it.
    fn run(module: &Module, name: &str, args: &[Val]) -> (Option<String>, Vec<u8>, Vec<u8>) {
        let mut store = Store::new(module.engine(), ());
        let instance = Instance::new(&mut store, module, &[]).unwrap();
        instance
            .get_func(&mut store, "spread")
            .unwrap()
            .call(&mut store, &[], &mut [])
            .unwrap();
        let func = instance.get_func(&mut store, name).unwrap();
        let trapped = func
            .call(&mut store, args, &mut [])
            .err()
            .map(|error| format!("{:?}", error.downcast_ref::<wasmtime::Trap>()));
        let mut data = |export: &str| instance.get_memory(&mut store, export).unwrap().data(&store).to_vec();
        let (a, b) = (data("mem_a"), data("mem_b"));
        (trapped, a, b)
    }

    #[test]
    fn rewritten_bulk_instructions_do_what_the_originals_do_in_bounds_and_out() {
        let engine = engine();
        // The memories exported, for the comparison.
        let wat = WAT.replacen(
            "(memory $a 1) (memory $b i64 1)",
            r#"(memory $a (export "mem_a") 1) (memory $b (export "mem_b") i64 1)"#,
            1,
        );
        let original = wat::parse_str(&wat).unwrap();
        let rewritten = chunked_by(&original, CHUNK)
            .unwrap()
            .expect("bulk instructions to rewrite");
        let (original, rewritten) = (
            Module::new(&engine, &original).unwrap(),
            Module::new(&engine, &rewritten).unwrap(),
        );
        let lengths = [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            3 * CHUNK + 5,
            1000,
            4096,
            SIZE - 1,
            SIZE,
        ];
        let places = [0, 1, CHUNK / 2, CHUNK, 100, 2048, SIZE / 2];
        let mut cases = Vec::new();
        for &len in &lengths {
            let mut ends = vec![SIZE - len, SIZE - len + 1, SIZE, SIZE + 1, u32::MAX as u64];
            ends.extend_from_slice(&places);
            for &to in &ends {
                for &from in &ends {
                    cases.push((to, from, len));
                }
            }
        }
        let mut checked = 0;
        for (to, from, len) in cases {
            let (to32, from32, len32) = (to as u32 as i32, from as u32 as i32, len as u32 as i32);
            let calls: Vec<(&str, Vec<Val>)> = vec![
                ("fill_a", vec![Val::I32(to32), Val::I32(0x41), Val::I32(len32)]),
                (
                    "fill_b",
                    vec![Val::I64(to as i64), Val::I32(0x42), Val::I64(len as i64)],
                ),
                ("copy_aa", vec![Val::I32(to32), Val::I32(from32), Val::I32(len32)]),
                (
                    "copy_bb",
                    vec![Val::I64(to as i64), Val::I64(from as i64), Val::I64(len as i64)],
                ),
                ("copy_ab", vec![Val::I32(to32), Val::I64(from as i64), Val::I32(len32)]),
                ("copy_ba", vec![Val::I64(to as i64), Val::I32(from32), Val::I32(len32)]),
                ("nested", vec![Val::I32(len32)]),
                ("fill_big", vec![Val::I32(to32)]),
                ("copy_big", vec![Val::I64(to as i64), Val::I64(from as i64)]),
            ];
            for (name, args) in calls {
                let expected = run(&original, name, &args);
                let got = run(&rewritten, name, &args);
                assert_eq!(expected.0, got.0, "{name}({to}, {from}, {len}): trap");
                assert!(expected.1 == got.1, "{name}({to}, {from}, {len}): memory a");
                assert!(expected.2 == got.2, "{name}({to}, {from}, {len}): memory b");
                checked += 1;
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn the_rewrite_adds_no_loops_to_a_guest_s_functions_and_no_locals_past_the_bound() {
        // Probe H61: rewritten in place with its loop, each instruction added a loop (2,049 in
        // one function were refused by compile_cost, and Cranelift compiled such code 25-50 times
        // slower), and six locals a function at the 50,000 bound could not take.
        let fills = "(memory.fill (local.get 0) (local.get 1) (local.get 2))".repeat(3000);
        let locals = " i32".repeat(50_000 - 3);
        let wat = format!(
            "(module (memory 1) (func (param i32 i32 i32) (local{locals}) {fills}) (func (param i32 i32 i32) {fills}))"
        );
        let original = wat::parse_str(wat).unwrap();
        let rewritten = chunked_by(&original, CHUNK).unwrap().expect("rewritten");
        Module::new(&engine(), &rewritten).expect("compiles with every local it had");
        crate::compile_cost::check(&rewritten).expect("within the compile checks");
    }

    #[test]
    fn a_bulk_instruction_spelled_in_more_bytes_than_needed_is_rewritten_too() {
        // memory.fill of 100 bytes, as 0xFC, then its sub-opcode 11 in two LEB bytes (0x8B 0x00),
        // then memory 0.
        let body = [0x00, 0x41, 0, 0x41, 0, 0x41, 0xE4, 0x00, 0xFC, 0x8B, 0x00, 0x00, 0x0B];
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.extend_from_slice(&[0x01, 4, 1, 0x60, 0, 0]); // type () -> ()
        bytes.extend_from_slice(&[0x03, 2, 1, 0]); // one function of it
        bytes.extend_from_slice(&[0x05, 3, 1, 0x00, 1]); // one memory of one page
        bytes.extend_from_slice(&[0x0A, body.len() as u8 + 2, 1, body.len() as u8]);
        bytes.extend_from_slice(&body);
        Module::new(&engine(), &bytes).expect("valid as it is");
        let rewritten = chunked_by(&bytes, CHUNK).unwrap().expect("rewritten");
        Module::new(&engine(), &rewritten).expect("valid rewritten");
    }

    #[test]
    fn a_module_without_bulk_instructions_is_not_rewritten_and_a_component_s_modules_are() {
        let plain = wat::parse_str("(module (func (export \"f\")))").unwrap();
        assert!(chunked_by(&plain, CHUNK).unwrap().is_none());
        let constant = |len: u64| {
            let wat = format!("(module (memory 1) (func (memory.fill (i32.const 0) (i32.const 1) (i32.const {len}))))");
            chunked_by(&wat::parse_str(wat).unwrap(), CHUNK).unwrap()
        };
        assert!(constant(CHUNK).is_none(), "a constant length of at most a chunk stays");
        assert!(constant(CHUNK + 1).is_some());
        let component = wat::parse_str(
            r#"(component
              (component $inner
                (core module $m (memory 1) (func (export "f") (memory.fill (i32.const 0) (i32.const 1) (i32.const 1000))))
                (core instance $i (instantiate $m))
                (func (export "f") (canon lift (core func $i "f"))))
              (instance $x (instantiate $inner))
              (export "f" (func $x "f")))"#,
        )
        .unwrap();
        let rewritten = chunked_by(&component, CHUNK)
            .unwrap()
            .expect("the nested module rewritten");
        assert!(rewritten.len() > component.len());
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&rewritten)
            .unwrap();
    }
}
