//! Compile children (lib/isolated-compile.ts) that outlive the environment that started them.
//!
//! Node reaps a child process in the event loop of the thread that spawned it. A worker
//! terminated while its compile child runs takes that loop with it: the child ends (its stdin
//! closes) but nothing waits for it, and it stays a zombie, holding a process slot, until the
//! whole process exits; a host that terminates busy workers would run out of them. So the JS
//! layer hands each running child's pid here, and when the environment goes away the children
//! it still held are killed and waited for on a thread of their own. A pidfd names the very
//! process it was opened for: a child Node already reaped is not confused with a later process
//! given the same pid. Elsewhere than Linux nothing is held (no pidfds; Windows has no zombies).

use std::cell::RefCell;
use std::collections::HashMap;
#[cfg(unix)]
use std::os::fd::OwnedFd as Pidfd;
#[cfg(target_os = "linux")]
use std::ptr;

use napi::Env;

use super::dispatcher::at_teardown_once;
use crate::js::Js;

#[cfg(not(unix))]
type Pidfd = ();

thread_local! {
    /// The children this thread's environment holds (one environment per JS thread).
    static HELD: RefCell<Held> = RefCell::new(Held::default());
}

#[derive(Default)]
struct Held {
    next_token: u32,
    children: HashMap<u32, Pidfd>,
}

/// Holds the running child `pid` for the calling environment: returns a token for
/// [`release_child`], or 0 when the child cannot be held (no pidfd here, or it is already gone).
/// Called as soon as the child is spawned, before the event loop can have reaped it.
#[napi_derive::napi(js_name = "holdChild")]
pub fn hold_child(env: Env, pid: u32) -> napi::Result<u32> {
    let Some(child) = open_pidfd(pid) else { return Ok(0) };
    at_teardown_once(Js(env.raw()), "compile children", release_all)?;
    Ok(HELD.with(|held| {
        let mut held = held.borrow_mut();
        held.next_token = held.next_token.checked_add(1).unwrap_or(1);
        let token = held.next_token;
        held.children.insert(token, child);
        token
    }))
}

/// Lets go of a child Node saw end (its `exit` event): Node reaped it.
#[napi_derive::napi(js_name = "releaseChild")]
pub fn release_child(token: u32) {
    HELD.with(|held| held.borrow_mut().children.remove(&token));
}

/// The environment is going away (a worker terminated, or the process exiting): its children
/// still running are killed, and a thread waits for each so that none stays a zombie.
fn release_all() {
    let children: Vec<Pidfd> = HELD.with(|held| held.borrow_mut().children.drain().map(|(_, child)| child).collect());
    if children.is_empty() {
        return;
    }
    for child in &children {
        kill(child);
    }
    // Killed, each ends at once; if no thread can start, they stay zombies as before.
    let _ = std::thread::Builder::new()
        .name("airssys-reap".into())
        .stack_size(64 << 10)
        .spawn(move || children.iter().for_each(wait));
}

#[cfg(target_os = "linux")]
fn open_pidfd(pid: u32) -> Option<Pidfd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).ok()?;
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = std::os::fd::RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just gave us this descriptor, and nothing else owns it.
    Some(unsafe { Pidfd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn open_pidfd(_: u32) -> Option<Pidfd> {
    None
}

#[cfg(target_os = "linux")]
fn kill(child: &Pidfd) {
    use std::os::fd::AsRawFd;
    // Fails harmlessly (ESRCH) for a child that has ended already.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            child.as_raw_fd(),
            libc::SIGKILL,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn kill(_: &Pidfd) {}

#[cfg(target_os = "linux")]
fn wait(child: &Pidfd) {
    use std::os::fd::AsRawFd;
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let Ok(id) = libc::id_t::try_from(child.as_raw_fd()) else {
        return;
    };
    // Fails harmlessly (ECHILD) for a child Node reaped already.
    while unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, libc::WEXITED) } == -1
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

#[cfg(not(target_os = "linux"))]
fn wait(_: &Pidfd) {}
