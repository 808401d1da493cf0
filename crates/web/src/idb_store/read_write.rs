//! Read-write transactions whose writes depend on what they read, on both wasm builds.
//!
//! IndexedDB accepts a request only while its transaction is active (in the task that created
//! it, and inside its requests' callbacks), and commits the transaction as soon as no request is
//! pending. Code that awaits a read and then writes relies on the future resuming inside that
//! window. It does on the single-threaded build, where wasm-bindgen's executor resumes futures
//! in a microtask. On the multi-threaded build it does not: a woken future resumes after an
//! `Atomics.waitAsync` promise, a task later, when the transaction has already committed (and
//! an event fired in between is missed by a listener registered only then).
//!
//! So a [`ReadWrite`] places its reads at once (their futures listen from the start), keeps the
//! transaction pending with a chain of cheap reads while the Rust code decides, and places the
//! writes from that chain's next callback, where the transaction is active whatever the
//! executor. Everything still happens in one transaction: no other tab's write can come between
//! the read and the write.

use std::cell::RefCell;
use std::future::IntoFuture;
use std::rc::Rc;

use idb::{Query, TransactionMode, TransactionResult};
use memory::Result;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::{IdbStore, aborted, idb_error, storage};

/// A key the keep-alive reads ask for; no store holds it (an absent key is the cheapest read).
const KEEP_ALIVE_KEY: &str = "\u{0}confidant-keep-alive";

/// One write a [`ReadWrite`] places once it has decided.
pub(super) enum Write {
    /// `value` into `store` (under `key` for a store without a key path).
    Put { store: &'static str, value: JsValue, key: Option<JsValue> },
    Delete { store: &'static str, key: JsValue },
}

enum Decision {
    Undecided,
    Write(Vec<Write>),
    /// Give up: the transaction is aborted, nothing is written.
    Abort,
    /// The writes are placed (or the transaction was aborted): the chain stops.
    Done,
}

pub(super) struct ReadWrite {
    stores: Vec<(&'static str, web_sys::IdbObjectStore)>,
    raw: web_sys::IdbTransaction,
    decision: Rc<RefCell<Decision>>,
    done: Option<idb::TransactionFuture>,
    what: String,
}

impl ReadWrite {
    /// Begin a read-write transaction over `names` (the first one carries the keep-alive reads).
    pub(super) fn begin(db: &IdbStore, names: &[&'static str], what: &str) -> Result<Self> {
        let transaction = db.transaction(names, TransactionMode::ReadWrite, what)?;
        let mut stores = Vec::with_capacity(names.len());
        for &name in names {
            let store = transaction.object_store(name).map_err(|e| storage(what, e))?;
            stores.push((name, web_sys::IdbObjectStore::from(store)));
        }
        let raw = stores.first().map(|(_, s)| s.transaction()).ok_or_else(|| storage(what, "no object store named"))?;
        let decision = Rc::new(RefCell::new(Decision::Undecided));
        keep_pending(stores[0].1.clone(), decision.clone(), raw.clone(), stores.clone());
        // Listening for the end from the start: it may come before this future is first polled.
        let done = Some(transaction.into_future());
        Ok(Self { stores, raw, decision, done, what: what.to_string() })
    }

    /// Read `key` of `store`: placed now, awaited whenever the caller likes.
    pub(super) fn get(&self, store: &'static str, key: JsValue) -> Result<impl Future<Output = Result<Option<JsValue>>> + use<>> {
        let raw = self.store(store)?;
        let request = idb::ObjectStore::from(raw.clone()).get(Query::Key(key)).map_err(|e| storage(&self.what, e))?;
        let future = request.into_future();
        let what = self.what.clone();
        Ok(async move { future.await.map_err(|e| idb_error(&what, e)) })
    }

    fn store(&self, name: &str) -> Result<&web_sys::IdbObjectStore> {
        self.stores.iter().find(|(n, _)| *n == name).map(|(_, s)| s).ok_or_else(|| storage(&self.what, format!("{name} is not in this transaction")))
    }

    /// Place `writes` and wait for the commit; anything but a commit is an error.
    pub(super) async fn commit(mut self, writes: Vec<Write>) -> Result<()> {
        *self.decision.borrow_mut() = Decision::Write(writes);
        let Some(done) = self.done.take() else { return Err(storage(&self.what, "the transaction was already ended")) };
        match done.await {
            Ok(TransactionResult::Committed) => Ok(()),
            Ok(TransactionResult::Aborted) => Err(aborted(&self.what, self.raw.error())),
            Err(e) => Err(match self.raw.error() {
                Some(d) => aborted(&self.what, Some(d)),
                None => idb_error(&self.what, e),
            }),
        }
    }
}

impl Drop for ReadWrite {
    /// Dropped without a commit (an early return, an error): nothing is written.
    fn drop(&mut self) {
        let mut decision = self.decision.borrow_mut();
        if matches!(*decision, Decision::Undecided) {
            *decision = Decision::Abort;
        }
    }
}

/// Keep the transaction pending with one cheap read; in its callback (the transaction active),
/// place the writes once they are decided, or read again.
fn keep_pending(store: web_sys::IdbObjectStore, decision: Rc<RefCell<Decision>>, raw: web_sys::IdbTransaction, stores: Vec<(&'static str, web_sys::IdbObjectStore)>) {
    // Fails only once the transaction has ended (aborted): then there is nothing to keep.
    let Ok(request) = store.get(&JsValue::from_str(KEEP_ALIVE_KEY)) else { return };
    let next = Closure::once_into_js(move || {
        let now = std::mem::replace(&mut *decision.borrow_mut(), Decision::Done);
        match now {
            Decision::Undecided => {
                *decision.borrow_mut() = Decision::Undecided;
                keep_pending(store, decision, raw, stores);
            }
            Decision::Write(writes) => {
                if place(&stores, writes).is_err() {
                    let _ = raw.abort();
                }
            }
            Decision::Abort => {
                let _ = raw.abort();
            }
            Decision::Done => {}
        }
    });
    request.set_onsuccess(Some(next.unchecked_ref()));
}

fn place(stores: &[(&'static str, web_sys::IdbObjectStore)], writes: Vec<Write>) -> std::result::Result<(), JsValue> {
    let store = |name: &str| stores.iter().find(|(n, _)| *n == name).map(|(_, s)| s).ok_or_else(|| JsValue::from_str("store not in the transaction"));
    for write in writes {
        match write {
            Write::Put { store: name, value, key: Some(key) } => store(name)?.put_with_key(&value, &key).map(|_| ())?,
            Write::Put { store: name, value, key: None } => store(name)?.put(&value).map(|_| ())?,
            Write::Delete { store: name, key } => store(name)?.delete(&key).map(|_| ())?,
        }
    }
    Ok(())
}
