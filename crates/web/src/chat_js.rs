//! Characters, sessions and the chat turn for JavaScript (`engine.characters`, `engine.sessions`,
//! `engine.debug`, `exportAll / importAll / wipe` in the npm package), over the model of an
//! [`crate::Engine`] and the memory of a [`crate::memory_js::MemoryEngine`], with characters and
//! sessions in the same IndexedDB database as the memories.
//!
//! A reply streams by calling `nextEvent()` until it resolves to `null`; `abort()` between two
//! calls ends it with what was written so far. Errors carry `code`s: `card_format`,
//! `not_found`, `bad_request`, `busy`, `storage_quota`, `storage`, `storage_corrupt`,
//! `newer_data`, and the model's and memory's own.

use std::cell::RefCell;
use std::rc::Rc;

use engine::{CardFormat, ChatEngine, EngineError, EngineSettings, ReplyOptions, TurnEvent};
use persona::ExportSpec;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::idb_store::IdbStore;
use crate::memory_js::MemoryEngine;
use crate::{Engine, OptionsJs, from_js, js_error, to_js};

mod evaluate;

fn engine_error(e: EngineError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// A turn event as JS sees it: `{ type: 'memory', records }`, `{ type: 'progress', done, total }`,
/// `{ type: 'thought' | 'action' | 'text', text, opens }`, `{ type: 'done', message, draft?,
/// usage, timings, finishReason }` (`draft`: the user's turn an `impersonate` wrote).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum EventJs {
    Memory { records: Vec<HitJs> },
    Progress { done: usize, total: usize },
    Thought { text: String, opens: bool },
    Action { text: String, opens: bool },
    Text { text: String, opens: bool },
    Done {
        message: Option<engine::Message>,
        #[serde(skip_serializing_if = "Option::is_none")]
        draft: Option<String>,
        usage: engine::Usage,
        timings: engine::Timings,
        #[serde(rename = "finishReason")]
        finish_reason: String,
    },
}

#[derive(Serialize)]
struct HitJs {
    record: memory::MemoryRecord,
    score: f32,
    relevance: f32,
    recency: f32,
    importance: f32,
}

impl From<TurnEvent> for EventJs {
    fn from(event: TurnEvent) -> Self {
        match event {
            TurnEvent::Memory { hits } => EventJs::Memory {
                records: hits
                    .into_iter()
                    .map(|h| HitJs { record: h.record, score: h.score, relevance: h.relevance, recency: h.recency, importance: h.importance })
                    .collect(),
            },
            TurnEvent::Progress { done, total } => EventJs::Progress { done, total },
            TurnEvent::Thought { text, opens } => EventJs::Thought { text, opens },
            TurnEvent::Action { text, opens } => EventJs::Action { text, opens },
            TurnEvent::Text { text, opens } => EventJs::Text { text, opens },
            TurnEvent::Done { message, draft, usage, timings, finish_reason } => EventJs::Done { message, draft, usage, timings, finish_reason },
        }
    }
}

fn reply_options(options: JsValue) -> Result<ReplyOptions, JsValue> {
    let defaults = ReplyOptions::default();
    if options.is_undefined() || options.is_null() {
        return Ok(defaults);
    }
    let given: OptionsJs = from_js(options, "options")?;
    // Fields the caller left out keep the role-play defaults, not the completion API's.
    Ok(ReplyOptions { max_tokens: given.max_tokens.unwrap_or(defaults.max_tokens), sampling: given.sampling(defaults.sampling) })
}

type Shared<T> = Rc<RefCell<T>>;

#[wasm_bindgen(js_name = ChatEngine)]
pub struct ChatEngineJs {
    chat: Shared<ChatEngine<IdbStore>>,
    /// None until `attachModel`: characters, sessions and backups work without a model.
    model: RefCell<Option<Shared<crate::Inner>>>,
    memory: Shared<crate::memory_js::Inner>,
}

fn no_model() -> JsValue {
    js_error("model_not_loaded", "no language model is loaded yet: load one before asking for a reply")
}

/// Borrow the chat engine (and the memory, and the model) for one call; overlapping calls fail
/// instead of waiting (the worker serialises them).
macro_rules! with_chat {
    ($self:ident, |$c:ident| $body:expr) => {{
        let chat = $self.chat.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = chat.try_borrow_mut().map_err(|_| js_error("busy", "another chat call is still running"))?;
            let $c = &mut *guard;
            $body
        })
    }};
    ($self:ident, |$c:ident, $mem:ident| $body:expr) => {{
        let (chat, memory) = ($self.chat.clone(), $self.memory.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = chat.try_borrow_mut().map_err(|_| js_error("busy", "another chat call is still running"))?;
            let mut memory = memory.try_borrow_mut().map_err(|_| js_error("busy", "the memory is busy"))?;
            let $c = &mut *guard;
            let $mem = &mut *memory;
            $body
        })
    }};
    ($self:ident, |$c:ident, $m:ident, $mem:ident| $body:expr) => {{
        let (chat, model, memory) = ($self.chat.clone(), $self.model.borrow().clone(), $self.memory.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let model = model.ok_or_else(no_model)?;
            let mut guard = chat.try_borrow_mut().map_err(|_| js_error("busy", "another chat call is still running"))?;
            let mut model = model.try_borrow_mut().map_err(|_| js_error("busy", "the model is busy"))?;
            let mut memory = memory.try_borrow_mut().map_err(|_| js_error("busy", "the memory is busy"))?;
            let $c = &mut *guard;
            let $m = &mut model.generator;
            let $mem = &mut *memory;
            $body
        })
    }};
}

fn views(characters: Vec<engine::StoredCharacter>) -> Result<Vec<Value>, EngineError> {
    characters.iter().map(|c| c.view()).collect()
}

fn session_view(session: &engine::Session) -> Value {
    let mut view = session.overview();
    if let Value::Object(map) = &mut view {
        map.insert("summaries".into(), serde_json::to_value(&session.summaries).unwrap_or(Value::Null));
    }
    view
}

#[wasm_bindgen(js_class = ChatEngine)]
impl ChatEngineJs {
    /// Characters and sessions in the IndexedDB database `databaseName` (the memory's), without
    /// a model: everything but replies and summaries works until `attachModel`.
    #[wasm_bindgen(js_name = openStore)]
    pub fn open_store(memory: &MemoryEngine, database_name: String) -> js_sys::Promise {
        let memory = memory.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let store = IdbStore::open(&database_name, None).await.map_err(|e| js_error(e.code(), &e.to_string()))?;
            let chat = ChatEngine::new(store, EngineSettings::default());
            Ok(ChatEngineJs { chat: Rc::new(RefCell::new(chat)), model: RefCell::new(None), memory }.into())
        })
    }

    /// Give replies and summaries a model (a chat opened with `openStore`, or a new model).
    #[wasm_bindgen(js_name = attachModel)]
    pub fn attach_model(&self, model: &Engine) -> Result<(), JsValue> {
        // A summary under way belongs to the old model's cache; it starts again on the new one.
        self.cancel_background()?;
        *self.model.borrow_mut() = Some(model.inner.clone());
        Ok(())
    }

    /// A card file's bytes (PNG, JSON or CHARX) → the new character.
    #[wasm_bindgen(js_name = importCharacter)]
    pub fn import_character(&self, bytes: Vec<u8>) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.import_character(&bytes).await.and_then(|s| s.view()).map_err(engine_error)?))
    }

    #[wasm_bindgen(js_name = listCharacters)]
    pub fn list_characters(&self) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.list_characters().await.and_then(views).map_err(engine_error)?))
    }

    #[wasm_bindgen(js_name = getCharacter)]
    pub fn get_character(&self, id: String) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.character(&id).await.and_then(|s| s.view()).map_err(engine_error)?))
    }

    /// `patch`: card fields by their spec names (`description`, `first_mes`, …), `profile`,
    /// `innerThoughts`, `userProfile`.
    #[wasm_bindgen(js_name = updateCharacter)]
    pub fn update_character(&self, id: String, patch: JsValue) -> js_sys::Promise {
        let patch: Result<Value, JsValue> = from_js(patch, "patch");
        with_chat!(self, |c| to_js(&c.update_character(&id, &patch?).await.and_then(|s| s.view()).map_err(engine_error)?))
    }

    #[wasm_bindgen(js_name = removeCharacter)]
    pub fn remove_character(&self, id: String) -> js_sys::Promise {
        with_chat!(self, |c, mem| {
            c.remove_character(mem, &id).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `format`: "png" or "json"; `spec`: "v2" or "v3" → the file's bytes.
    #[wasm_bindgen(js_name = exportCharacter)]
    pub fn export_character(&self, id: String, format: String, spec: String) -> js_sys::Promise {
        with_chat!(self, |c| {
            let format = match format.as_str() {
                "png" => CardFormat::Png,
                "json" => CardFormat::Json,
                other => return Err(js_error("bad_request", &format!("format {other:?}: use \"png\" or \"json\""))),
            };
            let spec = match spec.as_str() {
                "v2" => ExportSpec::V2,
                "v3" => ExportSpec::V3,
                other => return Err(js_error("bad_request", &format!("spec {other:?}: use \"v2\" or \"v3\""))),
            };
            let bytes = c.export_character(&id, format, spec).await.map_err(engine_error)?;
            Ok(js_sys::Uint8Array::from(&bytes[..]).into())
        })
    }

    /// A new session; its history starts with greeting `greeting` (0: the card's `first_mes`).
    #[wasm_bindgen(js_name = createSession)]
    pub fn create_session(&self, character_id: String, user_name: String, greeting: Option<usize>) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&session_view(&c.create_session(&character_id, &user_name, greeting.unwrap_or(0)).await.map_err(engine_error)?)))
    }

    #[wasm_bindgen(js_name = listSessions)]
    pub fn list_sessions(&self, character_id: Option<String>) -> js_sys::Promise {
        with_chat!(self, |c| {
            let sessions = c.list_sessions(character_id.as_deref()).await.map_err(engine_error)?;
            to_js(&sessions.iter().map(session_view).collect::<Vec<_>>())
        })
    }

    #[wasm_bindgen(js_name = getSession)]
    pub fn get_session(&self, id: String) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&session_view(&c.session(&id).await.map_err(engine_error)?)))
    }

    #[wasm_bindgen(js_name = removeSession)]
    pub fn remove_session(&self, id: String) -> js_sys::Promise {
        with_chat!(self, |c, mem| {
            c.remove_session(mem, &id).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The session's messages, oldest first.
    pub fn history(&self, session_id: String) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.session(&session_id).await.map_err(engine_error)?.messages))
    }

    /// Store the user's message and start the reply → the stored user message (at once: the
    /// prompt is assembled by the first `nextEvent()`, the message's memories are written after
    /// the reply). Then call `nextEvent()` until `null`.
    pub fn send(&self, session_id: String, text: String, options: JsValue) -> js_sys::Promise {
        let options = reply_options(options);
        with_chat!(self, |c, m, _mem| to_js(&c.begin_send(m, &session_id, &text, &options?).await.map_err(engine_error)?))
    }

    /// Replace the latest reply (or show the next greeting); then `nextEvent()` until `null`.
    pub fn regenerate(&self, session_id: String, options: JsValue) -> js_sys::Promise {
        let options = reply_options(options);
        with_chat!(self, |c, m, mem| {
            c.begin_regenerate(m, mem, &session_id, &options?).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Extend the latest reply (the same message grows); then `nextEvent()` until `null`.
    #[wasm_bindgen(js_name = continueReply)]
    pub fn continue_reply(&self, session_id: String, options: JsValue) -> js_sys::Promise {
        let options = reply_options(options);
        with_chat!(self, |c, m, _mem| {
            c.begin_continue(m, &session_id, &options?).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Draft the user's next message (not stored; `done` carries `draft`); then `nextEvent()`
    /// until `null`.
    pub fn impersonate(&self, session_id: String, options: JsValue) -> js_sys::Promise {
        let options = reply_options(options);
        with_chat!(self, |c, m, _mem| {
            c.begin_impersonate(m, &session_id, &options?).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The next event of the reply under way, or `null`.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&self) -> js_sys::Promise {
        with_chat!(self, |c, m, mem| match c.next_event(m, mem).await.map_err(engine_error)? {
            Some(event) => to_js(&EventJs::from(event)),
            None => Ok(JsValue::NULL),
        })
    }

    /// End the reply under way; the next `nextEvent()` stores what was written and says `done`.
    pub fn abort(&self) -> Result<(), JsValue> {
        let mut chat = self.chat.try_borrow_mut().map_err(|_| js_error("busy", "a chat call is running; abort between two"))?;
        // Without a model no reply is under way.
        let Some(model) = self.model.borrow().clone() else { return Ok(()) };
        let mut model = model.try_borrow_mut().map_err(|_| js_error("busy", "the model is busy"))?;
        chat.abort(&mut model.generator);
        Ok(())
    }

    #[wasm_bindgen(js_name = editMessage)]
    pub fn edit_message(&self, session_id: String, message_id: String, text: String) -> js_sys::Promise {
        with_chat!(self, |c, mem| to_js(&c.edit_message(mem, &session_id, &message_id, &text).await.map_err(engine_error)?))
    }

    #[wasm_bindgen(js_name = deleteMessage)]
    pub fn delete_message(&self, session_id: String, message_id: String) -> js_sys::Promise {
        with_chat!(self, |c, mem| {
            c.delete_message(mem, &session_id, &message_id).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Show version `index` of a regenerated reply (0: the oldest) → the message as shown.
    #[wasm_bindgen(js_name = chooseSwipe)]
    pub fn choose_swipe(&self, session_id: String, message_id: String, index: usize) -> js_sys::Promise {
        with_chat!(self, |c, mem| to_js(&c.choose_swipe(mem, &session_id, &message_id, index).await.map_err(engine_error)?))
    }

    /// Save the reply under way now (marked unfinished): the page is being hidden or closed.
    #[wasm_bindgen(js_name = savePartial)]
    pub fn save_partial(&self) -> js_sys::Promise {
        with_chat!(self, |c| {
            c.save_partial().await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The user's profile: current facts first, then the superseded ones (`supersededBy` set).
    #[wasm_bindgen(js_name = userProfile)]
    pub fn user_profile(&self) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.user_profile().await.map_err(engine_error)?))
    }

    /// Add a fact to the user's profile → the fact (it supersedes what it replaces).
    #[wasm_bindgen(js_name = addUserFact)]
    pub fn add_user_fact(&self, subject: String, value: String) -> js_sys::Promise {
        with_chat!(self, |c, mem| to_js(&c.add_user_fact(mem, &subject, &value).await.map_err(engine_error)?))
    }

    /// Change a profile fact's subject and/or value → the fact.
    #[wasm_bindgen(js_name = updateUserFact)]
    pub fn update_user_fact(&self, id: String, subject: Option<String>, value: Option<String>) -> js_sys::Promise {
        with_chat!(self, |c, mem| to_js(&c.update_user_fact(mem, &id, subject.as_deref(), value.as_deref()).await.map_err(engine_error)?))
    }

    #[wasm_bindgen(js_name = removeUserFact)]
    pub fn remove_user_fact(&self, id: String) -> js_sys::Promise {
        with_chat!(self, |c| {
            c.remove_user_fact(&id).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stored records that could not be read, set aside: `[{ store, key, error, value, foundAt }]`.
    pub fn unreadable(&self) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.unreadable().await.map_err(engine_error)?))
    }

    /// Show greeting `index` (0: `first_mes`, then the alternates) before the first reply.
    #[wasm_bindgen(js_name = setGreeting)]
    pub fn set_greeting(&self, session_id: String, index: usize) -> js_sys::Promise {
        with_chat!(self, |c| to_js(&c.set_greeting(&session_id, index).await.map_err(engine_error)?))
    }

    /// The prompt of the session's latest reply, sections labelled, or `null`.
    #[wasm_bindgen(js_name = debugPrompt)]
    pub fn debug_prompt(&self, session_id: String) -> Result<JsValue, JsValue> {
        let chat = self.chat.try_borrow().map_err(|_| js_error("busy", "a chat call is running"))?;
        match chat.debug_prompt(&session_id) {
            Some(p) => to_js(p),
            None => Ok(JsValue::NULL),
        }
    }

    /// One step of background work (a token of a rolling summary) → whether there was any.
    #[wasm_bindgen(js_name = backgroundStep)]
    pub fn background_step(&self) -> js_sys::Promise {
        with_chat!(self, |c, m, mem| Ok(JsValue::from_bool(c.background_step(m, mem).await.map_err(engine_error)?)))
    }

    /// Stop a summary under way (it starts again later): before the model is used for anything
    /// else.
    #[wasm_bindgen(js_name = cancelBackground)]
    pub fn cancel_background(&self) -> Result<(), JsValue> {
        let mut chat = self.chat.try_borrow_mut().map_err(|_| js_error("busy", "a chat call is running"))?;
        // Without a model no summary is being written.
        let Some(model) = self.model.borrow().clone() else { return Ok(()) };
        let mut model = model.try_borrow_mut().map_err(|_| js_error("busy", "the model is busy"))?;
        chat.cancel_background(&mut model.generator);
        Ok(())
    }

    #[wasm_bindgen(js_name = hasBackgroundWork)]
    pub fn has_background_work(&self) -> bool {
        self.chat.try_borrow().map(|c| c.has_background_work()).unwrap_or(false)
    }

    /// Every character, session and memory as JSON text.
    #[wasm_bindgen(js_name = exportAll)]
    pub fn export_all(&self) -> js_sys::Promise {
        with_chat!(self, |c, mem| {
            let backup = c.export_all(mem).await.map_err(engine_error)?;
            Ok(JsValue::from_str(&backup.to_string()))
        })
    }

    /// Restore JSON text from `exportAll` → `{ characters, sessions, memories }` counts; one
    /// transaction. Characters and sessions changed here after the backup's copies are replaced
    /// only with `replaceNewer` (else the code is `newer_data` and nothing is written).
    #[wasm_bindgen(js_name = importAll)]
    pub fn import_all(&self, text: String, replace_newer: Option<bool>) -> js_sys::Promise {
        with_chat!(self, |c, mem| {
            let backup: Value = serde_json::from_str(&text).map_err(|e| js_error("bad_request", &format!("the backup is not JSON: {e}")))?;
            to_js(&c.import_all(mem, &backup, replace_newer.unwrap_or(false)).await.map_err(engine_error)?)
        })
    }

    /// Delete every character, session and memory.
    pub fn wipe(&self) -> js_sys::Promise {
        if self.model.borrow().is_none() {
            // No model, so no summary under way to stop first.
            return with_chat!(self, |c, mem| {
                c.wipe_stored(mem).await.map_err(engine_error)?;
                Ok(JsValue::UNDEFINED)
            });
        }
        with_chat!(self, |c, m, mem| {
            c.wipe(m, mem).await.map_err(engine_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }
}
