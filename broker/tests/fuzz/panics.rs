//! Every panic in the process, counted: tokio tasks swallow them (a request task that
//! panics just never answers), so a hook records each one with its thread and scope.

use std::cell::Cell;
use std::sync::{Mutex, Once};

struct Recorded {
    scope: &'static str,
    text: String,
}

static PANICS: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

thread_local! {
    /// What this thread is running for, so one test's expected panics (proptest catching a
    /// decoder's while it shrinks) are not counted against another's.
    static SCOPE: Cell<&'static str> = const { Cell::new("") };
}

/// Installs the recording hook (once per process); the default hook still prints.
pub fn install() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let scope = SCOPE.with(Cell::get);
            let text = format!(
                "[thread {}{}{scope}] {info}",
                thread.name().unwrap_or("unnamed"),
                if scope.is_empty() { "" } else { ", in the " }
            );
            if let Ok(mut p) = PANICS.lock() {
                p.push(Recorded { scope, text });
            }
            previous(info);
        }));
    });
}

/// Marks the current thread as running for `scope` until dropped.
pub struct Scope(&'static str);

impl Scope {
    pub fn enter(scope: &'static str) -> Scope {
        Scope(SCOPE.with(|s| s.replace(scope)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPE.with(|s| s.set(self.0));
    }
}

/// The panics recorded outside `scope`.
pub fn outside(scope: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.scope != scope)
        .map(|p| p.text.clone())
        .collect()
}
