//! Resources across the boundary, both ways, with a cap on what a guest can make the host hold.
//!
//! - A handle to a *guest* resource held by JS is an entry of the instance's table; JS gets a
//!   token for it (wrapped by the JS layer in an object of the resource's class). Dropping the
//!   object (`[Symbol.dispose]`) drops the handle, which runs the guest's destructor; a token that
//!   is garbage-collected queues its handle to be dropped at the next call.
//! - A *host* resource (an imported one, implemented by a JS class) is a JS object the guest holds
//!   a handle to: the object sits in the instance's host slab, its index being the handle's `rep`.
//!   When the guest drops its last handle, the object's `[Symbol.dispose]` runs.
//!
//! Values are converted in two steps. On the JS thread, resources become plain markers (a
//! `Val::U64` for a guest handle, a `Val::S64` for a host object); where the store is at hand,
//! markers become `Val::Resource`s and back ([`Resources::resolve`], [`Resources::capture`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use napi::sys;
use wasmtime::AsContextMut;
use wasmtime::component::{ResourceAny, ResourceDynamic, ResourceType, Type, Val};

use crate::errors::Failure;
use crate::js::places::{self, Let};
use crate::js::token::TokenTag;
use crate::js::{Js, Kind, Reference, Value};
use crate::sync::lock;

const GUEST_TAG: TokenTag = TokenTag(sys::napi_type_tag {
    lower: 0x6169_7273_7379_7331,
    upper: 0x7265_736f_7572_6365,
});

/// A guest handle's marker: its table index and the entry's generation, packed in a `Val::U64`.
fn guest_marker(index: u32, generation: u32) -> Val {
    Val::U64((u64::from(generation) << 32) | u64::from(index))
}

/// The table index and generation of a guest marker's payload.
fn unpack(packed: u64) -> (u32, u32) {
    (packed as u32, (packed >> 32) as u32)
}

/// What a token holds: a guest handle's place in its instance's table.
struct GuestToken {
    resources: Weak<Resources>,
    index: u32,
    generation: u32,
}

impl Drop for GuestToken {
    fn drop(&mut self) {
        if let Some(resources) = self.resources.upgrade() {
            resources.drop_at_next_call(self.index, self.generation);
        }
    }
}

#[derive(Default)]
struct GuestEntry {
    generation: u32,
    handle: Option<ResourceAny>,
}

#[derive(Default)]
struct Table {
    guest: Vec<GuestEntry>,
    free_guest: Vec<u32>,
    host: Vec<Option<Reference>>,
    free_host: Vec<u32>,
    live: usize,
    /// Guest handles whose token was garbage-collected, or dropped while a call ran.
    collected: Vec<(u32, u32)>,
    /// An insertion was refused at a cap since the last look (see [`Resources::take_limit_hit`]):
    /// ours, or wasmtime's store-wide one.
    limit_hit: Option<Cap>,
    /// Host objects put in the slab by conversions under way, innermost last (a conversion can
    /// run JS, a getter, which can convert values for another call of the instance).
    converting: Vec<u32>,
    /// Host objects conversions under way met past the cap, innermost last: released with the
    /// rest of their conversion's.
    refused: Vec<Reference>,
}

impl Table {
    /// The guest resources JS holds handles to (those it let go of but not yet dropped included).
    fn js_held(&self) -> usize {
        self.guest.len() - self.free_guest.len()
    }
}

/// Where a conversion from JS begins, in [`Table::converting`] and [`Table::refused`].
pub struct Mark {
    converting: usize,
    refused: usize,
}

/// The resources of one component instance.
pub struct Resources {
    table: Mutex<Table>,
    /// Whether `Table::collected` may hold handles: every call looks, and most find none, so
    /// they look here without taking the lock.
    collected_pending: AtomicBool,
    /// The types linked for the imported (host) resources: `host_dynamic(i)` for `i` below this.
    host_types: u32,
    /// Most handles (guest and host together) the instance may make the host hold
    /// (`limits.resourceHandles`).
    max_live: usize,
    /// Releases host objects' references on the JS thread, wherever they are let go, after
    /// calling each object's `[Symbol.dispose]` when that is due (see [`places`]).
    release: Release,
}

/// See [`Resources::release`].
/// `None` releases the references alone: objects that stay the host's and never had a handle.
pub type Release = Box<dyn Fn(Vec<Reference>, Option<Let>) + Send + Sync>;

/// The cap on live handles an insertion met.
#[derive(Clone, Copy)]
enum Cap {
    /// `limits.resourceHandles`, on the handles JS keeps and the host objects the guest keeps;
    /// with the guest resources JS held then.
    Ours { js_held: usize },
    /// wasmtime's on every handle of the store ([`crate::limits::store_handles`]).
    Store,
}

/// The HostLimitError's message at our cap, `js_held` of whose handles are guest resources JS
/// holds. One JS dropped without `[Symbol.dispose]` keeps its handle until V8 collects the object,
/// which a small heap may put off for a long time (an outside probe's loop reached 10,000 after
/// 168k objects), so when JS holds some the message says how to let go sooner.
fn limit(max_live: usize, js_held: usize) -> String {
    let mut message =
        format!("the instance would hold more than {max_live} resource handles at once (limits.resourceHandles");
    if js_held > 0 {
        message.push_str(&format!(
            "; JS holds {js_held} of the guest's resources, and one dropped without [Symbol.dispose] keeps its \
             handle until it is garbage-collected"
        ));
    }
    message.push(')');
    message
}

impl Resources {
    pub fn new(host_types: u32, max_live: u32, release: Release) -> Arc<Self> {
        Arc::new(Resources {
            table: Mutex::new(Table::default()),
            collected_pending: AtomicBool::new(false),
            host_types,
            max_live: max_live as usize,
            release,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Live handles (guest and host).
    pub fn live(&self) -> usize {
        self.table().live
    }

    /// Puts a guest handle in the table for JS; `captured` of the table's guest handles are ones
    /// the same capture put there, which JS does not hold yet.
    fn insert_guest(&self, handle: ResourceAny, captured: usize) -> Result<Val, String> {
        let mut table = self.table();
        if table.live >= self.max_live {
            // The failure is returned as it is: no conversion from JS needs to learn of it.
            return Err(limit(self.max_live, table.js_held().saturating_sub(captured)));
        }
        table.live += 1;
        let index = match table.free_guest.pop() {
            Some(index) => index,
            None => {
                table.guest.push(GuestEntry::default());
                (table.guest.len() - 1) as u32
            }
        };
        let entry = &mut table.guest[index as usize];
        entry.handle = Some(handle);
        Ok(guest_marker(index, entry.generation))
    }

    /// Takes a guest handle out of the table (it moves to the guest, or is dropped).
    fn take_guest(&self, index: u32, generation: u32) -> Option<ResourceAny> {
        let mut table = self.table();
        let entry = table.guest.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        let handle = entry.handle.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        table.free_guest.push(index);
        table.live -= 1;
        Some(handle)
    }

    fn peek_guest(&self, index: u32, generation: u32) -> Option<ResourceAny> {
        let table = self.table();
        let entry = table.guest.get(index as usize)?;
        (entry.generation == generation).then_some(entry.handle).flatten()
    }

    /// Puts a host object in the slab: its `rep`, or `None` past the cap, where it is kept with
    /// the conversion's refused objects (see [`Self::capped_since`]).
    fn insert_host(&self, object: Reference) -> Option<u32> {
        let mut table = self.table();
        if table.live >= self.max_live {
            let js_held = table.js_held();
            table.limit_hit = Some(Cap::Ours { js_held });
            table.refused.push(object);
            return None;
        }
        table.live += 1;
        let rep = match table.free_host.pop() {
            Some(rep) => {
                table.host[rep as usize] = Some(object);
                rep
            }
            None => {
                table.host.push(Some(object));
                (table.host.len() - 1) as u32
            }
        };
        table.converting.push(rep);
        Some(rep)
    }

    /// Why the conversion that began at `mark` must be refused, when it met the cap: it goes on
    /// past it to reach every host object in the value, so that all of those the host gave up
    /// are disposed, not only the ones before the cap.
    pub fn capped_since(&self, mark: &Mark) -> Option<String> {
        let table = self.table();
        if table.refused.len() <= mark.refused {
            return None;
        }
        let js_held = match table.limit_hit {
            Some(Cap::Ours { js_held }) => js_held,
            _ => table.js_held(),
        };
        Some(limit(self.max_live, js_held))
    }

    /// Where a conversion from JS begins: see [`Self::converted`].
    pub fn converting(&self) -> Mark {
        let table = self.table();
        Mark {
            converting: table.converting.len(),
            refused: table.refused.len(),
        }
    }

    /// A conversion that began at `mark` ended: if it failed, the host objects it put in the slab
    /// come back out (the value holding them is gone), with those it met past the cap. The guest
    /// never had them: they are the host's again, or, when the host gave them up (`given_up`: a
    /// host function's return or thrown payload, which nothing else holds), they are disposed.
    pub fn converted(self: &Arc<Self>, mark: Mark, ok: bool, given_up: bool) {
        let (reps, refused) = {
            let mut table = self.table();
            let reps_mark = mark.converting.min(table.converting.len());
            let refused_mark = mark.refused.min(table.refused.len());
            (
                table.converting.split_off(reps_mark),
                table.refused.split_off(refused_mark),
            )
        };
        // Those met past the cap never had a handle: only what the host gave up may be disposed.
        if !refused.is_empty() {
            (self.release)(refused, given_up.then_some(Let::GivenUp));
        }
        if !ok {
            let placed: Vec<Reference> = reps.into_iter().filter_map(|rep| self.take_host(rep)).collect();
            if !placed.is_empty() {
                (self.release)(placed, Some(if given_up { Let::Dropped } else { Let::GivenBack }));
            }
        }
    }

    /// Takes host objects out of the slab and releases them without their `[Symbol.dispose]`: the
    /// guest never had them, or only borrowed them, so they stay the host's (unless the guest
    /// dropped its own handle to one while it was lent: then it goes now).
    fn give_back(&self, reps: impl IntoIterator<Item = u32>) {
        let objects: Vec<Reference> = reps.into_iter().filter_map(|rep| self.take_host(rep)).collect();
        if !objects.is_empty() {
            (self.release)(objects, Some(Let::GivenBack));
        }
    }

    /// Takes a host object out of the slab (the guest let go of it).
    pub fn take_host(&self, rep: u32) -> Option<Reference> {
        let mut table = self.table();
        let object = table.host.get_mut(rep as usize)?.take()?;
        table.free_host.push(rep);
        table.live -= 1;
        Some(object)
    }

    /// Whether an insertion was refused at the cap since the last look: a conversion that failed
    /// for that is a HostLimitError, not a bad value.
    pub fn take_limit_hit(&self) -> Option<Failure> {
        self.table().limit_hit.take().map(|cap| match cap {
            Cap::Ours { js_held } => Failure::HostLimit(limit(self.max_live, js_held)),
            Cap::Store => Failure::HostLimit(crate::limits::store_handles_exceeded(self.store_handles())),
        })
    }

    /// wasmtime's cap on the store's live handles, set by [`crate::store::new_store`].
    pub fn store_handles(&self) -> usize {
        crate::limits::store_handles(self.max_live)
    }

    /// Guest handles whose JS side is gone: to drop with the store at hand.
    pub fn take_collected(&self) -> Vec<ResourceAny> {
        // A handle queued while this runs is dropped at the call after.
        if !self.collected_pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let collected = {
            let mut table = self.table();
            self.collected_pending.store(false, Ordering::Release);
            std::mem::take(&mut table.collected)
        };
        collected
            .into_iter()
            .filter_map(|(index, generation)| self.take_guest(index, generation))
            .collect()
    }

    /// The token `value` is, if any, and whether it belongs to this instance.
    fn token<'a>(&self, js: Js, value: Value) -> napi::Result<Option<(&'a GuestToken, bool)>> {
        Ok(js
            .token_data::<GuestToken>(&GUEST_TAG, value)?
            .map(|token| (token, std::ptr::eq(token.resources.as_ptr(), self))))
    }

    /// Takes the guest handle of a token (for `[Symbol.dispose]`): `None` if it was moved or
    /// dropped already, or is not a token of this instance.
    pub fn take_token(&self, js: Js, value: Value) -> Result<Option<ResourceAny>, Failure> {
        Ok(match self.token(js, value)? {
            Some((token, true)) => self.take_guest(token.index, token.generation),
            _ => None,
        })
    }

    /// Whether the token `value` is one of this instance's whose handle is still in the table.
    pub fn holds_token(&self, js: Js, value: Value) -> Result<bool, Failure> {
        Ok(match self.token(js, value)? {
            Some((token, true)) => self.peek_guest(token.index, token.generation).is_some(),
            _ => false,
        })
    }

    fn drop_at_next_call(&self, index: u32, generation: u32) {
        let mut table = self.table();
        table.collected.push((index, generation));
        self.collected_pending.store(true, Ordering::Release);
    }

    /// Queues the token's handle to be dropped at the next call (the instance is busy now).
    pub fn drop_later(&self, js: Js, value: Value) -> Result<(), Failure> {
        if let Some((token, true)) = self.token(js, value)? {
            self.drop_at_next_call(token.index, token.generation);
        }
        Ok(())
    }

    /// On the JS thread: the marker for a JS value where `ty` (own or borrow) is expected. A
    /// token of this instance stands for its guest handle; any other object is a host object.
    pub fn from_js(self: &Arc<Self>, js: Js, value: Value, ty: &Type) -> Result<Val, String> {
        let what = || match ty {
            Type::Own(_) => "an owned resource",
            _ => "a borrowed resource",
        };
        if let Some((token, mine)) = self.token(js, value).map_err(|e| e.reason)? {
            if !mine {
                return Err(format!("expected {}, got a resource of another instance", what()));
            }
            if self.peek_guest(token.index, token.generation).is_none() {
                return Err(format!(
                    "expected {}, got a resource that was dropped or moved into the guest",
                    what()
                ));
            }
            return Ok(guest_marker(token.index, token.generation));
        }
        match js.kind(value).map_err(|e| e.reason)? {
            Kind::Object | Kind::Function if self.host_types > 0 => {
                let object = js.reference(value).map_err(|e| e.reason)?;
                let Some(rep) = self.insert_host(object) else {
                    // Refused with the whole value once it is converted (see `capped_since`).
                    return Ok(Val::S64(i64::from(u32::MAX)));
                };
                places::place(js, value);
                Ok(Val::S64(i64::from(rep)))
            }
            _ => Err(format!("expected {}, got {}", what(), js.describe(value))),
        }
    }

    /// On the JS thread: the JS value of a marker made by [`Resources::capture`].
    pub fn to_js(self: &Arc<Self>, js: Js, marker: &Val, ty: &Type) -> napi::Result<Value> {
        match *marker {
            Val::U64(packed) => {
                let (index, generation) = unpack(packed);
                let resources = Arc::downgrade(self);
                js.token(
                    &GUEST_TAG,
                    GuestToken {
                        resources,
                        index,
                        generation,
                    },
                )
            }
            Val::S64(rep) => {
                let rep = rep as u32;
                // An own handle the guest gives back to the host: the object leaves the slab.
                if matches!(ty, Type::Own(_)) {
                    let Some(object) = self.take_host(rep) else {
                        return js.undefined();
                    };
                    let value = js.dereference(&object);
                    js.release(object);
                    if let Ok(value) = value {
                        places::unplace(js, value, Let::Returned);
                    }
                    return value;
                }
                let table = self.table();
                match table.host.get(rep as usize).and_then(Option::as_ref) {
                    Some(object) => js.dereference(object),
                    None => js.undefined(),
                }
            }
            _ => js.undefined(),
        }
    }

    /// Where the store is at hand: markers in `value` (of type `ty`) become resources for the
    /// guest. `resolved` records what that did: the call confirms it once it starts
    /// ([`Self::start`]) or undoes it when it does not ([`Self::refused`]).
    pub fn resolve(
        &self,
        store: &mut impl AsContextMut,
        value: &mut Val,
        ty: &Type,
        resolved: &mut Resolved,
    ) -> Result<(), String> {
        each_resource(value, ty, &mut |value, ty| {
            let owned = matches!(ty, Type::Own(_));
            match (&*value, ty) {
                (&Val::U64(packed), _) => {
                    let (index, generation) = unpack(packed);
                    let handle = self
                        .peek_guest(index, generation)
                        .ok_or("a resource was dropped or moved before the call")?;
                    // The caller's mistake, told here by the types of this store: left to the
                    // call, wasmtime takes it for the guest's (`mismatched resource types`) and
                    // the instance is poisoned.
                    if let Type::Own(expected) | Type::Borrow(expected) = ty
                        && handle.ty() != *expected
                    {
                        let what = if owned {
                            "an owned resource"
                        } else {
                            "a borrowed resource"
                        };
                        return Err(format!("expected {what}, got a resource of another type"));
                    }
                    // Moved twice, or moved and lent, in one call: wasmtime would take the
                    // second for the guest's error too. Lent twice is fine.
                    if let Some(&moved_before) = resolved.guest.get(&(index, generation))
                        && (owned || moved_before)
                    {
                        return Err(if owned {
                            "expected an owned resource not also passed elsewhere in this call".into()
                        } else {
                            "expected a borrowed resource not also moved in this call".into()
                        });
                    }
                    resolved.guest.insert((index, generation), owned);
                    *value = Val::Resource(handle);
                }
                (&Val::S64(rep), Type::Own(rt) | Type::Borrow(rt)) => {
                    let rep = rep as u32;
                    let payload = (0..self.host_types)
                        .find(|&payload| ResourceType::host_dynamic(payload) == *rt)
                        .ok_or("a host object where the guest expects one of its own resources")?;
                    // A borrow is lent from an own handle the host keeps for the call: wasmtime
                    // makes a host borrow only inside a call scope, and a top-level call from JS
                    // has none yet ("no current scope").
                    let handle = ResourceDynamic::new_own(rep, payload)
                        .try_into_resource_any(&mut *store)
                        .map_err(|e| {
                            if crate::errors::handle_limit_hit(&e) {
                                self.table().limit_hit = Some(Cap::Store);
                            }
                            format!("{e:#}")
                        })?;
                    resolved.host.push((rep, handle, !owned));
                    *value = Val::Resource(handle);
                }
                _ => {}
            }
            Ok(())
        })
    }

    /// The call whose values `resolved` was made for starts: the guest handles it moves leave
    /// the table. Returns the loans to end after it ([`Self::end_lent`]).
    pub fn start(&self, resolved: Resolved) -> Vec<(u32, ResourceAny)> {
        for ((index, generation), _) in resolved.guest.into_iter().filter(|&(_, owned)| owned) {
            self.take_guest(index, generation);
        }
        (resolved.host.into_iter())
            .filter(|&(_, _, lent)| lent)
            .map(|(rep, handle, _)| (rep, handle))
            .collect()
    }

    /// The call whose values `resolved` was made for does not start: the handles made for host
    /// objects leave the store's table without their destructor (the objects stay in the slab,
    /// for the call's [`Loans`] to take back), and moved guest handles stay JS's.
    pub fn refused(&self, store: &mut impl AsContextMut, resolved: Resolved) {
        for (_, handle, _) in resolved.host {
            // Fails only in a store a trap poisoned, whose table goes with it.
            let _ = ResourceDynamic::try_from_resource_any(handle, &mut *store);
        }
    }

    /// Where the store is at hand: resources in `value` (of type `ty`) that the guest hands out
    /// become markers. Guest handles enter the table (a borrowed one too, for the duration of a
    /// host call: `borrowed` collects it, to end the borrow after the call); host handles give
    /// their object's slab index.
    ///
    /// `captured` counts the guest handles the captures of one call put in the table (JS holds
    /// none of them until the call's values reach it), across the captures of its values.
    pub fn capture(
        &self,
        store: &mut impl AsContextMut,
        value: &mut Val,
        ty: &Type,
        borrowed: &mut Vec<(ResourceAny, Val)>,
        captured: &mut usize,
    ) -> Result<(), Failure> {
        each_resource(value, ty, &mut |value, _| {
            let &mut Val::Resource(handle) = value else {
                return Ok(());
            };
            if let Ok(dynamic) = ResourceDynamic::try_from_resource_any(handle, &mut *store) {
                *value = Val::S64(i64::from(dynamic.rep()));
                return Ok(());
            }
            let marker = self.insert_guest(handle, *captured).map_err(Failure::HostLimit)?;
            *captured += 1;
            if !handle.owned() {
                borrowed.push((handle, marker.clone()));
            }
            *value = marker;
            Ok(())
        })
    }

    /// Ends borrows a host call received (their table entries go, and wasmtime's borrow ends).
    pub fn end_borrows(
        &self,
        store: &mut impl AsContextMut,
        borrowed: Vec<(ResourceAny, Val)>,
    ) -> wasmtime::Result<()> {
        for (handle, marker) in borrowed {
            if let Val::U64(packed) = marker {
                let (index, generation) = unpack(packed);
                self.take_guest(index, generation);
            }
            handle.resource_drop(&mut *store)?;
        }
        Ok(())
    }

    /// Ends the loans of host objects to the guest for one call: the handles that lent them leave
    /// the store's table without their destructor (the objects stay the host's), and their slab
    /// entries are freed.
    pub fn end_lent(&self, store: &mut impl AsContextMut, lent: Vec<(u32, ResourceAny)>) {
        let reps = lent.into_iter().map(|(rep, handle)| {
            // Fails only in a store a trap poisoned, whose table goes with it.
            let _ = ResourceDynamic::try_from_resource_any(handle, &mut *store);
            rep
        });
        self.give_back(reps.collect::<Vec<_>>());
    }
}

/// What [`Resources::resolve`] did for one call's values.
#[derive(Default)]
pub struct Resolved {
    /// Handles made for host objects: slab index, handle, and whether it is lent (a borrow).
    host: Vec<(u32, ResourceAny, bool)>,
    /// Guest handles passed, by table index and generation, and whether as own: those leave the
    /// table when the call starts.
    guest: HashMap<(u32, u32), bool>,
}

/// The host objects a call's arguments put in the slab. Until the call starts they are the
/// host's: if it never does (a later argument is refused, the instance is busy or disposed, the
/// native stack is short, the call is aborted first), they leave the slab when the arguments are
/// dropped, without their `[Symbol.dispose]`, instead of staying until the instance goes and
/// being disposed then as if the guest had held them.
pub struct Loans {
    resources: Arc<Resources>,
    reps: Vec<u32>,
    started: AtomicBool,
}

impl Loans {
    /// The call started: the guest has the objects (or borrows them, until `end_lent`).
    pub fn started(&self) {
        self.started.store(true, Ordering::Release);
    }
}

impl Drop for Loans {
    fn drop(&mut self) {
        if !self.started.load(Ordering::Acquire) {
            self.resources.give_back(std::mem::take(&mut self.reps));
        }
    }
}

impl Resources {
    /// The host objects in `values` (converted for parameters of `types`), which the call will
    /// lend or give to the guest; `None` when they hold none.
    pub fn loans<'a>(self: &Arc<Self>, values: &mut [Val], types: impl Iterator<Item = &'a Type>) -> Option<Loans> {
        let mut reps = Vec::new();
        for (value, ty) in values.iter_mut().zip(types) {
            let _ = each_resource(value, ty, &mut |value, _| {
                if let Val::S64(rep) = *value {
                    reps.push(rep as u32);
                }
                Ok::<(), ()>(())
            });
        }
        (!reps.is_empty()).then(|| Loans {
            resources: self.clone(),
            reps,
            started: AtomicBool::new(false),
        })
    }

    /// The store went, with every handle the guest held: the host objects are disposed, as if
    /// the guest had dropped them, and the guest handles JS held are gone.
    pub fn store_dropped(&self) {
        let table = std::mem::take(&mut *self.table());
        let objects: Vec<Reference> = table.host.into_iter().flatten().collect();
        if !objects.is_empty() {
            (self.release)(objects, Some(Let::Dropped));
        }
    }
}

/// Calls `at` on every value in `value` (of type `ty`) that sits where an `own` or `borrow` is,
/// looking inside lists, records, tuples, variants, options and results.
fn each_resource<E>(
    value: &mut Val,
    ty: &Type,
    at: &mut impl FnMut(&mut Val, &Type) -> Result<(), E>,
) -> Result<(), E> {
    match (value, ty) {
        (value, Type::Own(_) | Type::Borrow(_)) => at(value, ty),
        (Val::List(items), Type::List(list)) => {
            let element = list.ty();
            items.iter_mut().try_for_each(|item| each_resource(item, &element, at))
        }
        (Val::Record(fields), Type::Record(record)) => fields
            .iter_mut()
            .zip(record.fields())
            .try_for_each(|((_, item), field)| each_resource(item, &field.ty, at)),
        (Val::Tuple(items), Type::Tuple(tuple)) => items
            .iter_mut()
            .zip(tuple.types())
            .try_for_each(|(item, ty)| each_resource(item, &ty, at)),
        (Val::Variant(name, Some(payload)), Type::Variant(variant)) => {
            match variant
                .cases()
                .find(|case| case.name == name.as_str())
                .and_then(|case| case.ty)
            {
                Some(ty) => each_resource(payload, &ty, at),
                None => Ok(()),
            }
        }
        (Val::Option(Some(payload)), Type::Option(option)) => each_resource(payload, &option.ty(), at),
        (Val::Result(Ok(Some(payload))), Type::Result(result)) => match result.ok() {
            Some(ty) => each_resource(payload, &ty, at),
            None => Ok(()),
        },
        (Val::Result(Err(Some(payload))), Type::Result(result)) => match result.err() {
            Some(ty) => each_resource(payload, &ty, at),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a value of `ty` can hold a resource (so its conversion needs [`Resources`]).
pub fn holds_resources(ty: &Type) -> bool {
    match ty {
        Type::Own(_) | Type::Borrow(_) => true,
        Type::List(list) => holds_resources(&list.ty()),
        Type::Record(record) => record.fields().any(|field| holds_resources(&field.ty)),
        Type::Tuple(tuple) => tuple.types().any(|ty| holds_resources(&ty)),
        Type::Variant(variant) => variant
            .cases()
            .any(|case| case.ty.as_ref().is_some_and(holds_resources)),
        Type::Option(option) => holds_resources(&option.ty()),
        Type::Result(result) => {
            result.ok().as_ref().is_some_and(holds_resources) || result.err().as_ref().is_some_and(holds_resources)
        }
        _ => false,
    }
}
