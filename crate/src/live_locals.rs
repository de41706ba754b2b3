//! Which of a function's locals are live where: enough to tell how many values its calls and the
//! edges between its blocks carry in locals, which Cranelift's register allocator handles one by
//! one at each. A local is live where a later read may see its value: a backward pass over the
//! function's control flow, the branches of its blocks and loops followed, repeated until each
//! loop's set at its start stops growing.
//!
//! Counting every local at every edge would refuse real code (functions of thousands of locals and
//! thousands of blocks, most of them dead almost everywhere); counting none let 4,000 locals read
//! after 10,000 blocks take Cranelift 13 s and 1.4 GB.

use wasmparser::Operator;

/// What a value live in a local counts at an edge between blocks (a block's start and end,
/// `else`, a branch and each target of a `br_table`). A block edge costs Cranelift some 50 ns for
/// each value live across it, and some 13 bytes; a call some 27 ns, which counts 1.
pub const EDGE_WEIGHT: u64 = 4;

/// What a value live in a local counts, in addition, at the start of a loop it is live through:
/// 1,000 loops with 2,000 locals live through each took Cranelift 2.6 s and 390 MB, nine times
/// as long as the same locals across as many blocks.
pub const LOOP_WEIGHT: u64 = 48;

/// Most work the passes may do for one input, every function together: an operator read, or a
/// word of a live set (64 locals) made or touched, counts one, so that the sets held at once take
/// at most 128 MiB. The real code measured needs at most 1.8 million (a 12 MB component); at this
/// bound the passes take some 0.05 s.
pub const MAX_WORK: u64 = 1 << 24;

/// Most locals (parameters included) a valid function has: wasmparser's validator refuses more
/// (its `MAX_WASM_FUNCTION_LOCALS`, 50,000, and 1,000 parameters), after this pass. Such a
/// function is not followed: 1,000,000 locals made each loop's set 125 KB (probe H50: 198 KB of
/// input took 8 GB).
const MAX_VALID_LOCALS: u32 = 51_000;

/// One function's operators, as far as liveness goes, in their order.
#[derive(Default)]
pub struct LiveLocals {
    events: Vec<Event>,
    /// The depths of the `br_table`s' targets, default last; each event names its run.
    targets: Vec<u32>,
    /// Each open block's kind, the function's body first (a loop with its number).
    open: Vec<Kind>,
    loops: u32,
    /// How many locals (parameters first): the width of the live sets.
    locals: u32,
}

#[derive(Clone, Copy)]
enum Kind {
    Block,
    If,
    Loop(u32),
}

#[derive(Clone, Copy)]
enum Event {
    Get(u32),
    /// `local.set`, and `local.tee`, which leaves the value on the operand stack, not in the local.
    Set(u32),
    Open,
    Else,
    End(Kind),
    /// A call (of a function, or of one of wasmtime's runtime functions).
    Call,
    /// An edge whose values all stay put (a lazily made table entry's branch).
    Edge,
    Br(u32),
    BrIf(u32),
    BrTable {
        first: u32,
        count: u32,
    },
    /// What follows is unreachable and nothing is live after it (`return`, `unreachable`, a throw).
    Exit,
}

/// Whether nothing after `operator` is reachable until its block ends, so that nothing on the
/// operand stack or in a local outlives it (`return`, `unreachable`, a throw, a tail call).
pub fn ends_flow(operator: &Operator) -> bool {
    matches!(
        operator,
        Operator::Return
            | Operator::Unreachable
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
    )
}

/// Whether `operator` is compiled to a call of one of wasmtime's runtime functions behind a
/// branch (a table's lazily made entries, an indirect call's): a call and an edge both.
pub fn calls_behind_a_branch(operator: &Operator) -> bool {
    matches!(
        operator,
        Operator::CallIndirect { .. } | Operator::TableGet { .. } | Operator::TableSet { .. }
    )
}

/// A live set: one bit per local.
#[derive(Clone, Default)]
struct Set {
    words: Vec<u64>,
}

impl Set {
    fn empty(locals: u32) -> Self {
        Set {
            words: vec![0; locals.div_ceil(64) as usize],
        }
    }

    fn insert(&mut self, local: u32) {
        if let Some(word) = self.words.get_mut((local / 64) as usize) {
            *word |= 1 << (local % 64);
        }
    }

    fn remove(&mut self, local: u32) {
        if let Some(word) = self.words.get_mut((local / 64) as usize) {
            *word &= !(1 << (local % 64));
        }
    }

    fn len(&self) -> u64 {
        self.words.iter().map(|word| u64::from(word.count_ones())).sum()
    }

    fn clear(&mut self) {
        self.words.fill(0);
    }

    fn union(&mut self, other: &Set) {
        for (word, other) in self.words.iter_mut().zip(&other.words) {
            *word |= other;
        }
    }

    /// Adds `other`, and says whether that changed anything.
    fn grow(&mut self, other: &Set) -> bool {
        let mut grown = false;
        for (word, &other) in self.words.iter_mut().zip(&other.words) {
            grown |= other & !*word != 0;
            *word |= other;
        }
        grown
    }
}

/// A block being passed backward: where a branch to it leads, and what the `else` arm of an `if`
/// needs at its start.
struct Frame {
    kind: Kind,
    /// Live where a branch to this block goes: after its end (a loop's is its start's, kept apart).
    after: Set,
    /// Live at the start of an `if`'s `else` arm (or after its end without one).
    otherwise: Option<Set>,
}

impl LiveLocals {
    /// A function of `locals` locals, its parameters included.
    pub fn new(locals: u32) -> Self {
        LiveLocals {
            open: vec![Kind::Block],
            locals,
            ..LiveLocals::default()
        }
    }

    /// Notes what `operator` does to locals and to the control flow; `call` says it is compiled to
    /// a call.
    pub fn read(&mut self, operator: &Operator, call: bool) {
        let event = match *operator {
            Operator::LocalGet { local_index } => Event::Get(local_index),
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => Event::Set(local_index),
            Operator::Block { .. } | Operator::TryTable { .. } => self.open(Kind::Block),
            Operator::If { .. } => self.open(Kind::If),
            Operator::Loop { .. } => {
                self.loops += 1;
                self.open(Kind::Loop(self.loops - 1))
            }
            Operator::Else => Event::Else,
            Operator::End => Event::End(self.open.pop().unwrap_or(Kind::Block)),
            Operator::Br { relative_depth } => Event::Br(relative_depth),
            Operator::BrIf { relative_depth }
            | Operator::BrOnNull { relative_depth }
            | Operator::BrOnNonNull { relative_depth }
            | Operator::BrOnCast { relative_depth, .. }
            | Operator::BrOnCastFail { relative_depth, .. } => Event::BrIf(relative_depth),
            Operator::BrTable { ref targets } => {
                let first = u32::try_from(self.targets.len()).unwrap_or(u32::MAX);
                self.targets.extend(targets.targets().flatten());
                self.targets.push(targets.default());
                let count = u32::try_from(self.targets.len()).unwrap_or(u32::MAX) - first;
                Event::BrTable { first, count }
            }
            _ if ends_flow(operator) => Event::Exit,
            _ if calls_behind_a_branch(operator) => {
                self.events.extend([Event::Edge, Event::Call]);
                return;
            }
            _ if call => Event::Call,
            _ => return,
        };
        self.events.push(event);
    }

    fn open(&mut self, kind: Kind) -> Event {
        self.open.push(kind);
        Event::Open
    }

    /// What the function's locals hold live across its calls (1 each) and edges ([`EDGE_WEIGHT`]
    /// each, and [`LOOP_WEIGHT`] more through a loop), added up; or `None` when telling would
    /// take more than `work` words of the live sets (after which `work` is what is left).
    pub fn across(&self, work: &mut u64) -> Option<u64> {
        if self.locals == 0 || self.locals > MAX_VALID_LOCALS {
            return Some(0);
        }
        // Each loop's set, made before the passes.
        let words = u64::from(self.locals.div_ceil(64));
        *work = work.checked_sub(words.saturating_mul(u64::from(self.loops)))?;
        let mut loops = vec![Set::empty(self.locals); self.loops as usize];
        loop {
            let (grown, across) = self.pass(&mut loops, work)?;
            if !grown {
                return Some(across);
            }
        }
    }

    /// One backward pass: what is live across each call and edge, given what is live at each
    /// loop's start, which grows with what the pass finds there (and says whether it did).
    fn pass(&self, loops: &mut [Set], work: &mut u64) -> Option<(bool, u64)> {
        let words = u64::from(self.locals.div_ceil(64));
        let mut live = Set::empty(self.locals);
        let mut frames: Vec<Frame> = Vec::new();
        let (mut grown, mut across) = (false, 0u64);
        for &event in self.events.iter().rev() {
            let cost = if matches!(event, Event::Get(_) | Event::Set(_)) {
                1
            } else {
                words
            };
            *work = work.checked_sub(cost)?;
            match event {
                Event::Get(local) => live.insert(local),
                Event::Set(local) => live.remove(local),
                Event::Call => across = across.saturating_add(live.len()),
                Event::Edge => across = across.saturating_add(EDGE_WEIGHT * live.len()),
                Event::End(kind) => {
                    across = across.saturating_add(EDGE_WEIGHT * live.len());
                    frames.push(Frame {
                        kind,
                        after: match kind {
                            Kind::Loop(_) => Set::default(),
                            _ => live.clone(),
                        },
                        otherwise: None,
                    });
                }
                Event::Else => {
                    across = across.saturating_add(EDGE_WEIGHT * live.len());
                    let Some(frame) = frames.last_mut() else { continue };
                    frame.otherwise = Some(std::mem::replace(&mut live, frame.after.clone()));
                }
                Event::Open => {
                    let Some(frame) = frames.pop() else { continue };
                    match frame.kind {
                        Kind::If => live.union(frame.otherwise.as_ref().unwrap_or(&frame.after)),
                        Kind::Loop(number) => {
                            across = across.saturating_add(LOOP_WEIGHT * live.len());
                            if let Some(start) = loops.get_mut(number as usize) {
                                grown |= start.grow(&live);
                            }
                        }
                        Kind::Block => {}
                    }
                    across = across.saturating_add(EDGE_WEIGHT * live.len());
                }
                Event::Br(depth) => {
                    match target(&frames, loops, depth) {
                        Some(target) => live.clone_from(target),
                        None => live.clear(),
                    }
                    across = across.saturating_add(EDGE_WEIGHT * live.len());
                }
                Event::BrIf(depth) => {
                    if let Some(target) = target(&frames, loops, depth) {
                        live.union(target);
                    }
                    across = across.saturating_add(EDGE_WEIGHT * live.len());
                }
                Event::BrTable { first, count } => {
                    let depths = self.targets.get(first as usize..).unwrap_or_default();
                    live.clear();
                    for &depth in depths.iter().take(count as usize) {
                        *work = work.checked_sub(words)?;
                        if let Some(target) = target(&frames, loops, depth) {
                            live.union(target);
                        }
                    }
                    // Each target is an edge the live values go along.
                    across = across.saturating_add(EDGE_WEIGHT * live.len() * u64::from(count));
                }
                Event::Exit => live.clear(),
            }
        }
        Some((grown, across))
    }
}

/// Live where a branch of `depth` from the innermost open block goes.
fn target<'a>(frames: &'a [Frame], loops: &'a [Set], depth: u32) -> Option<&'a Set> {
    let frame = frames.get(frames.len().checked_sub(1 + depth as usize)?)?;
    match frame.kind {
        Kind::Loop(number) => loops.get(number as usize),
        _ => Some(&frame.after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    /// What the locals of the module's last function hold live across its calls and edges.
    fn across(text: &str, work: &mut u64) -> Option<u64> {
        let bytes = wat::parse_str(text).unwrap();
        let bodies = Parser::new(0)
            .parse_all(&bytes)
            .filter_map(|payload| match payload.unwrap() {
                Payload::CodeSectionEntry(body) => Some(body),
                _ => None,
            });
        // The last function, of one parameter.
        if let Some(body) = bodies.last() {
            {
                let locals: u32 = body
                    .get_locals_reader()
                    .unwrap()
                    .into_iter()
                    .map(|l| l.unwrap().0)
                    .sum();
                let mut liveness = LiveLocals::new(1 + locals);
                for operator in body.get_operators_reader().unwrap() {
                    let operator = operator.unwrap();
                    liveness.read(&operator, matches!(operator, Operator::Call { .. }));
                }
                return liveness.across(work);
            }
        }
        unreachable!()
    }

    fn count(text: &str) -> u64 {
        across(text, &mut MAX_WORK.clone()).unwrap()
    }

    #[test]
    fn a_local_is_live_from_its_set_to_its_last_read() {
        // Local 1 across two blocks' four edges, 4 each; parameter 0 never read.
        let read = "(module (func (param i32) (local i32)
            (local.set 1 (i32.const 5)) block end block end (drop (local.get 1))))";
        assert_eq!(count(read), 16);
        let unread = "(module (func (param i32) (local i32) (local.set 1 (i32.const 5)) block end block end))";
        assert_eq!(count(unread), 0);
        // Across a call, 1 each: the parameter read after it and the local (set after: not live).
        let call = "(module (func $g) (func (param i32) (local i32)
            call $g (local.set 1 (local.get 0)) call $g (drop (local.get 1))))";
        assert_eq!(count(call), 2);
    }

    #[test]
    fn an_if_s_arms_are_followed_apart() {
        // Set again in the `then` arm only: the first value is live through the `else` arm's
        // block, to the read after the `if` (a count in program order would miss it).
        let text = "(module (func (param i32) (local i32)
            (local.set 1 (i32.const 5))
            (if (local.get 0) (then (local.set 1 (i32.const 6))) (else block end))
            (drop (local.get 1))))";
        // The `if`'s start (local 1, 4), the `else` (4), the block's start and end (4 each), the
        // `if`'s end (4).
        assert_eq!(count(text), 20);
    }

    #[test]
    fn a_value_read_in_a_loop_is_live_around_it_and_branches_carry_their_target_s() {
        // Locals 0 and 1 are live at the loop's start and along its back edge: 48 + 4 each at its
        // start, 4 each at the branch; nothing after the loop.
        let looped = "(module (func (param i32) (local i32)
            (local.set 1 (i32.const 5)) (loop (drop (local.get 1)) (br_if 0 (local.get 0)))))";
        assert_eq!(count(looped), 2 * (48 + 4) + 2 * 4);
        // Nested loops: the outer loop's read reaches the inner loop's start through the outer
        // back edge, which takes one more pass to find.
        let nested = "(module (func (param i32) (local i32)
            (loop (loop (br_if 0 (local.get 0))) (drop (local.get 1)) (br_if 0 (local.get 0)))))";
        let both = 2 * (48 + 4);
        // Both loops' starts; the inner branch, the inner loop's end and the outer branch (two
        // locals each).
        assert_eq!(count(nested), both + both + 3 * 2 * 4);
        // A branch out of a block carries what is live after the block, not what the code it skips
        // reads.
        let skip = "(module (func (param i32) (local i32)
            (block (br_if 0 (local.get 0)) (drop (local.get 1))) ))";
        // At the `br_if`, local 1 (read when it does not branch; nothing is live after the
        // block); at the block's start both; at its end none.
        assert_eq!(count(skip), 4 + 2 * 4);
    }

    #[test]
    fn telling_stops_at_its_work_bound() {
        let text = "(module (func (param i32) (local i32)
            (local.set 1 (i32.const 5)) block end block end (drop (local.get 1))))";
        let mut work = 100;
        assert_eq!(across(text, &mut work), Some(16));
        // Seven events: two reads and sets, five words at edges.
        assert_eq!(work, 100 - 7);
        assert_eq!(across(text, &mut 5), None);
    }

    #[test]
    fn each_loop_s_set_is_charged_before_it_is_made() {
        // 50,000 locals (782 words a set) and 1,000 loops: 782,000 words before any pass.
        let loops = format!(
            "(module (func (param i32) (local {}) {} (drop (local.get 1))))",
            "i32 ".repeat(49_999),
            "(loop (br_if 0 (local.get 0))) ".repeat(1000)
        );
        assert_eq!(across(&loops, &mut 700_000), None);
        assert!(across(&loops, &mut MAX_WORK.clone()).is_some());
        // Past what a valid function declares, nothing is followed: the validator refuses it.
        let many = format!(
            "(module (func (param i32) (local {}) (loop) (drop (local.get 1))))",
            "i32 ".repeat(51_000)
        );
        let mut work = 10;
        assert_eq!(across(&many, &mut work), Some(0));
        assert_eq!(work, 10);
    }
}
