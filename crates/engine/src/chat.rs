//! Characters, sessions and the chat turn ([`turn`]: [`ChatEngine::begin_send`],
//! [`ChatEngine::next_event`]), and the rolling summaries written in the background.
//!
//! The model and the memory are passed into each call rather than owned: the browser bindings
//! share them with the plain completion and memory APIs.

mod profile;
mod turn;

use std::collections::{BTreeSet, HashMap};

use crate::model::ChatModel;
use llm::{GenerateOptions, SamplingParams};
use memory::record::new_id;
use memory::{Memory, MemoryKind, NewMemory, Store, TextEmbedder};
use persona::{Character, ExportSpec, Lorebook, MacroContext, PromptOptions, PromptSection, Role, export_card_json, export_card_png, import_card};
use serde::Serialize;
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::store::ChatStore;
use crate::summary::{NoteJob, SummaryJob};
use crate::types::{MAX_PERSONA_NOTES, Message, PersonaNote, Session, SessionSummary, Speaker, StoredCharacter, UnreadableRecord};

pub use turn::{ReplyOptions, Timings, TokenWork, TurnEvent, Usage};
use turn::PendingTurn;

/// Longest user message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Tuning of the turn.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Budget and layout of the prompt; `context_tokens` is capped by the model's context.
    pub prompt: PromptOptions,
    /// Memories fetched before the ones shown in the prompt are picked.
    pub memories_searched: usize,
    /// A rolling summary is written once this many messages are not covered by one…
    pub summarize_every: usize,
    /// …not counting the latest this many, which stay verbatim.
    pub keep_recent: usize,
    pub summary_max_tokens: usize,
    pub fact_importance: f32,
    pub summary_importance: f32,
    pub global_lorebooks: Vec<Lorebook>,
    pub global_system_prompt: Option<String>,
    /// Prompt tokens read per step: a long prompt reports progress, and can be stopped, between
    /// chunks ([`TurnEvent::Progress`]).
    pub prefill_chunk: usize,
    /// A reply being written is saved (marked unfinished) at most this often, in ms, so a
    /// reload or a closed tab loses at most this much of it.
    pub partial_save_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            prompt: PromptOptions::default(),
            memories_searched: 8,
            summarize_every: 10,
            keep_recent: 4,
            summary_max_tokens: 96,
            fact_importance: 0.8,
            summary_importance: 0.7,
            global_lorebooks: Vec::new(),
            global_system_prompt: None,
            prefill_chunk: 64,
            partial_save_ms: 2000,
        }
    }
}


/// The prompt assembled for a session's latest reply (`engine.debug.prompt`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptDebug {
    /// Every message with every section labelled and counted.
    pub text: String,
    pub sections: Vec<PromptSection>,
    /// The exact text given to the tokenizer (the chat template applied).
    pub rendered: String,
    pub total_tokens: usize,
    pub budget: usize,
    pub stable_messages: usize,
    pub memories_used: usize,
    pub lore_entries: Vec<String>,
}

/// Where a card is exported to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardFormat {
    Json,
    Png,
}


/// Characters, sessions and the chat turn; see the module docs.
pub struct ChatEngine<C: ChatStore> {
    store: C,
    settings: EngineSettings,
    clock: Box<dyn Fn() -> u64>,
    turn: Option<PendingTurn>,
    summary: Option<SummaryJob>,
    /// The character's note on the summary just written, being written.
    note: Option<NoteJob>,
    /// Sessions that may want a summary.
    summary_wanted: BTreeSet<String>,
    last_prompts: HashMap<String, PromptDebug>,
    /// Per session, the tokens of its latest prompt's persona system message: after a summary
    /// has filled the model's cache with its own prompt, they are read back in the background
    /// so the next reply does not wait for them.
    persona_prefix: HashMap<String, Vec<u32>>,
    /// The model is reading a persona prefix back in ([`Self::background_step`]).
    rewarming: bool,
}

pub(crate) fn speaker_role(speaker: Speaker) -> Role {
    match speaker {
        Speaker::User => Role::User,
        Speaker::Assistant => Role::Assistant,
    }
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// "2026-11-22" for a unix-ms time.
pub(crate) fn date_label(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

impl<C: ChatStore> ChatEngine<C> {
    pub fn new(store: C, settings: EngineSettings) -> Self {
        Self {
            store,
            settings,
            clock: Box::new(memory::record::now_ms),
            turn: None,
            summary: None,
            note: None,
            summary_wanted: BTreeSet::new(),
            last_prompts: HashMap::new(),
            persona_prefix: HashMap::new(),
            rewarming: false,
        }
    }

    /// Replace the clock (unix ms), for tests.
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + 'static) {
        self.clock = Box::new(clock);
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut EngineSettings {
        &mut self.settings
    }

    pub fn store(&self) -> &C {
        &self.store
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    fn ensure_idle(&self) -> Result<()> {
        if self.turn.is_some() { Err(EngineError::Busy) } else { Ok(()) }
    }

    // ---- characters -------------------------------------------------------------------

    /// Import a card file (PNG, JSON or CHARX bytes) as a new character.
    pub async fn import_character(&mut self, bytes: &[u8]) -> Result<StoredCharacter> {
        let imported = import_card(bytes)?;
        if imported.character.name.trim().is_empty() {
            return Err(EngineError::BadRequest("the card has no name".into()));
        }
        let stored = StoredCharacter::new(new_id(), &imported.character, imported.spec, imported.avatar_png.as_deref(), self.now());
        self.store.put_character(&stored).await?;
        Ok(stored)
    }

    pub async fn list_characters(&self) -> Result<Vec<StoredCharacter>> {
        let mut all = self.store.list_characters().await?;
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    pub async fn character(&self, id: &str) -> Result<StoredCharacter> {
        self.store.get_character(id).await?.ok_or_else(|| EngineError::not_found("character", id))
    }

    pub async fn update_character(&mut self, id: &str, patch: &Value) -> Result<StoredCharacter> {
        let mut stored = self.character(id).await?;
        stored.apply_patch(patch, self.now())?;
        self.store.put_character(&stored).await?;
        Ok(stored)
    }

    /// Remove a character with its sessions and memories.
    pub async fn remove_character<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, id: &str) -> Result<()> {
        self.ensure_idle()?;
        self.character(id).await?;
        let ids: Vec<String> = memory.export_records(Some(id)).await?.into_iter().map(|r| r.id).collect();
        memory.forget_many(&ids).await?;
        for s in self.store.list_sessions(Some(id)).await? {
            self.last_prompts.remove(&s.id);
            self.summary_wanted.remove(&s.id);
        }
        self.store.delete_character(id).await
    }

    /// The card as a file: JSON or PNG (the avatar it came with, or a plain image), V2 or V3.
    pub async fn export_character(&self, id: &str, format: CardFormat, spec: ExportSpec) -> Result<Vec<u8>> {
        let stored = self.character(id).await?;
        let character = stored.character()?;
        Ok(match format {
            CardFormat::Json => export_card_json(&character, spec),
            CardFormat::Png => export_card_png(&character, spec, stored.avatar_bytes()?.as_deref())?,
        })
    }

    // ---- sessions ---------------------------------------------------------------------

    fn greeting_message(character: &Character, user_name: &str, index: usize, now: u64) -> Result<Message> {
        let greetings = character.greetings();
        let text = greetings.get(index).ok_or_else(|| {
            EngineError::BadRequest(format!("greeting {index} does not exist; the card has {}", greetings.len()))
        })?;
        let text = MacroContext::new(character.display_name(), user_name).apply(text);
        let parsed = persona::parse_reply_with(&text, character.inner_thoughts().enabled);
        Ok(Message {
            id: new_id(),
            role: Speaker::Assistant,
            text: parsed.speech(),
            thought: non_empty(parsed.thought()),
            action: non_empty(parsed.action()),
            raw: text,
            created_at: now,
            greeting: true,
            memory_ids: Vec::new(),
            used_memory_ids: Vec::new(),
            unfinished: false,
            swipes: Vec::new(),
            swipe: 0,
        })
    }

    /// Start a chat with a character; its history starts with the card's greeting (`first_mes`,
    /// or alternate greeting `greeting_index - 1`), unless the greeting is empty.
    pub async fn create_session(&mut self, character_id: &str, user_name: &str, greeting_index: usize) -> Result<Session> {
        let user_name = user_name.trim();
        if user_name.is_empty() || user_name.len() > 100 {
            return Err(EngineError::BadRequest("the user name must be 1 to 100 bytes".into()));
        }
        let character = self.character(character_id).await?.character()?;
        let now = self.now();
        let greeting = Self::greeting_message(&character, user_name, greeting_index, now)?;
        let session = Session {
            id: new_id(),
            character_id: character_id.to_string(),
            user_name: user_name.to_string(),
            created_at: now,
            updated_at: now,
            greeting_index,
            messages: if greeting.raw.trim().is_empty() { Vec::new() } else { vec![greeting] },
            summaries: Vec::new(),
        };
        self.store.put_session(&session).await?;
        Ok(session)
    }

    /// Sessions of a character (or all), most recently used first.
    pub async fn list_sessions(&self, character_id: Option<&str>) -> Result<Vec<Session>> {
        let mut all = self.store.list_sessions(character_id).await?;
        all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    pub async fn session(&self, id: &str) -> Result<Session> {
        self.store.get_session(id).await?.ok_or_else(|| EngineError::not_found("session", id))
    }

    /// Remove a session and the memories written from it.
    pub async fn remove_session<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, id: &str) -> Result<()> {
        self.ensure_idle()?;
        let session = self.session(id).await?;
        let ids: Vec<String> = memory
            .export_records(Some(&session.character_id))
            .await?
            .into_iter()
            .filter(|r| r.session_id.as_deref() == Some(id))
            .map(|r| r.id)
            .collect();
        memory.forget_many(&ids).await?;
        self.last_prompts.remove(id);
        self.summary_wanted.remove(id);
        if self.summary.as_ref().is_some_and(|j| j.session_id == id) {
            self.summary = None;
        }
        self.store.delete_session(id).await
    }

    /// Show another of the card's greetings as the session's first message (only while the
    /// greeting is still the latest message, as a swipe would).
    pub async fn set_greeting(&mut self, session_id: &str, index: usize) -> Result<Message> {
        self.ensure_idle()?;
        let session = self.session(session_id).await?;
        let character = self.character(&session.character_id).await?.character()?;
        let now = self.now();
        let message = Self::greeting_message(&character, &session.user_name, index, now)?;
        let shown = message.clone();
        self.store
            .update_session(session_id, |session| {
                if !(session.messages.len() == 1 && session.messages[0].greeting) {
                    return Err(EngineError::BadRequest("the greeting can only be changed before the first reply".into()));
                }
                session.messages[0] = shown;
                session.greeting_index = index;
                session.updated_at = now;
                Ok(())
            })
            .await?;
        Ok(message)
    }

    /// Change a message's text; its memory records follow (re-embedded, facts taken again).
    pub async fn edit_message<E: TextEmbedder, S: Store>(
        &mut self,
        memory: &mut Memory<E, S>,
        session_id: &str,
        message_id: &str,
        text: &str,
    ) -> Result<Message> {
        self.ensure_idle()?;
        check_text(text)?;
        let mut session = self.session(session_id).await?;
        let index = session.message_index(message_id).ok_or_else(|| EngineError::not_found("message", message_id))?;
        let character = self.character(&session.character_id).await?.character()?;
        let old_ids = std::mem::take(&mut session.messages[index].memory_ids);
        memory.forget_many(&old_ids).await?;
        self.unlearn_user_facts(message_id).await?;
        let message = &mut session.messages[index];
        message.unfinished = false;
        match message.role {
            Speaker::User => {
                message.text = text.to_string();
                message.raw = text.to_string();
            }
            Speaker::Assistant => {
                let parsed = persona::parse_reply_with(text, character.inner_thoughts().enabled);
                message.text = parsed.speech();
                message.thought = non_empty(parsed.thought());
                message.action = non_empty(parsed.action());
                message.raw = parsed.to_text(true);
            }
        }
        message.sync_shown();
        let mut message = message.clone();
        message.memory_ids = self.remember_message(memory, &session, &character, &message).await?;
        let now = self.now();
        let edited = message.clone();
        self.store
            .update_session(session_id, |session| {
                let index = session.message_index(message_id).ok_or_else(|| EngineError::not_found("message", message_id))?;
                session.messages[index] = edited;
                session.updated_at = now;
                Ok(())
            })
            .await?;
        Ok(message)
    }

    /// Show version `index` of a regenerated reply (a swipe back or forth): it becomes what the
    /// history and the prompt use, and its memory records replace the other version's.
    pub async fn choose_swipe<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, session_id: &str, message_id: &str, index: usize) -> Result<Message> {
        self.ensure_idle()?;
        let session = self.session(session_id).await?;
        let character = self.character(&session.character_id).await?.character()?;
        let now = self.now();
        let (message, old_ids) = self
            .store
            .update_session(session_id, |session| {
                let at = session.message_index(message_id).ok_or_else(|| EngineError::not_found("message", message_id))?;
                let message = &mut session.messages[at];
                let version = message.swipes.get(index).cloned().ok_or_else(|| {
                    EngineError::BadRequest(format!("version {index} does not exist; the message has {}", message.swipes.len().max(1)))
                })?;
                if index == message.swipe {
                    return Ok((message.clone(), Vec::new()));
                }
                message.swipe = index;
                message.show(&version);
                let old_ids = std::mem::take(&mut message.memory_ids);
                session.updated_at = now;
                Ok((session.messages[at].clone(), old_ids))
            })
            .await?;
        if old_ids.is_empty() && !message.memory_ids.is_empty() {
            return Ok(message);
        }
        memory.forget_many(&old_ids).await?;
        let mut session = session;
        session.messages.retain(|m| m.id != message_id);
        let ids = self.remember_message(memory, &session, &character, &message).await?;
        let shown_id = message.id.clone();
        let noted = ids.clone();
        self.store
            .update_session(session_id, |session| {
                if let Some(at) = session.message_index(&shown_id) {
                    session.messages[at].memory_ids = noted;
                }
                Ok(())
            })
            .await?;
        Ok(Message { memory_ids: ids, ..message })
    }

    /// Delete a message and the memory records written from it.
    pub async fn delete_message<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, session_id: &str, message_id: &str) -> Result<()> {
        self.ensure_idle()?;
        let now = self.now();
        let removed = self
            .store
            .update_session(session_id, |session| {
                let index = session.message_index(message_id).ok_or_else(|| EngineError::not_found("message", message_id))?;
                let removed = session.messages.remove(index);
                // A summary through the deleted message no longer marks a place in the history.
                session.summaries.retain(|s| s.through_id != removed.id);
                session.updated_at = now;
                Ok(removed)
            })
            .await?;
        memory.forget_many(&removed.memory_ids).await?;
        self.unlearn_user_facts(message_id).await?;
        Ok(())
    }

    /// The prompt assembled for the session's latest reply in this engine's lifetime.
    pub fn debug_prompt(&self, session_id: &str) -> Option<&PromptDebug> {
        self.last_prompts.get(session_id)
    }

    // ---- background summaries ---------------------------------------------------------

    /// The messages a new summary would cover: from the first to `end` (exclusive).
    pub(crate) fn summary_range(&self, session: &Session) -> Option<(usize, usize)> {
        let covered = session.latest_summary().map_or(0, |(i, _)| i + 1);
        let end = session.messages.len().saturating_sub(self.settings.keep_recent);
        (end > covered && end - covered >= self.settings.summarize_every).then_some((covered, end))
    }

    fn wants_summary(&self, session: &Session) -> bool {
        self.summary_range(session).is_some()
    }

    /// Whether background work is waiting or under way.
    pub fn has_background_work(&self) -> bool {
        self.summary.is_some() || self.note.is_some() || !self.summary_wanted.is_empty() || self.rewarming
    }

    /// Do a little background work — one token of a rolling summary, or a chunk of the persona
    /// prefix read back into the model's cache after one — if no reply is under way. Returns
    /// false when there is nothing to do. A reply started meanwhile cancels the summary, which
    /// starts again at the next idle moment.
    pub async fn background_step<M: ChatModel, E: TextEmbedder, S: Store>(&mut self, model: &mut M, memory: &mut Memory<E, S>) -> Result<bool> {
        if self.turn.is_some() {
            return Ok(false);
        }
        if self.rewarming {
            // A chunk at a time, then the rest with one step (whose token is not wanted).
            let done = match model.prefill(self.settings.prefill_chunk).await {
                Ok(Some(_)) => false,
                Ok(None) => {
                    let _ = model.step().await;
                    true
                }
                Err(_) => true,
            };
            if done {
                // The cache keeps what was read; a failure only costs the next reply the time.
                model.abort();
                self.rewarming = false;
            }
            return Ok(true);
        }
        if self.summary.is_none() && self.note.is_none() {
            let Some(session_id) = self.summary_wanted.pop_first() else { return Ok(false) };
            let Some(session) = self.store.get_session(&session_id).await? else { return Ok(true) };
            let Some((start, end)) = self.summary_range(&session) else { return Ok(true) };
            let character = self.character(&session.character_id).await?.character()?;
            let job = SummaryJob::begin(model, &session, &character, start, end, self.settings.summary_max_tokens)?;
            self.summary = Some(job);
            return Ok(true);
        }
        let step = match model.step().await {
            Ok(step) => step,
            Err(e) => {
                self.summary = None;
                self.note = None;
                return Err(e.into());
            }
        };
        if let Some(step) = step {
            if let Some(job) = &mut self.summary {
                job.text.push_str(&step.text);
            } else if let Some(job) = &mut self.note {
                job.text.push_str(&step.text);
            }
            return Ok(true);
        }
        let session_id = if let Some(job) = self.summary.take() {
            let session_id = job.session_id.clone();
            let through = job.through_id.clone();
            self.store_summary(memory, job).await?;
            // Then the character's own note on it, before the persona is read back.
            if let Some(note) = self.begin_note(model, &session_id, &through).await? {
                self.note = Some(note);
                return Ok(true);
            }
            session_id
        } else if let Some(job) = self.note.take() {
            let session_id = job.session_id.clone();
            self.store_note(job).await?;
            session_id
        } else {
            return Ok(true);
        };
        // The summary's prompt pushed the persona out of the cache: read it back now, while
        // nothing waits, rather than at the next reply.
        if let Some(prefix) = self.persona_prefix.get(&session_id).filter(|p| p.len() > 1)
            && model.begin(prefix.clone(), GenerateOptions { max_tokens: 1, sampling: SamplingParams::greedy(), ignore_eos: true, cache_prompt: true }).is_ok()
        {
            self.rewarming = true;
        }
        Ok(true)
    }

    async fn store_summary<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, job: SummaryJob) -> Result<()> {
        let text = job.cleaned_text();
        let Some(session) = self.store.get_session(&job.session_id).await? else { return Ok(()) };
        // The chat changed under the summary (a message deleted): try again later.
        if session.message_index(&job.through_id).is_none() || text.is_empty() {
            return Ok(());
        }
        let record = memory
            .add(NewMemory {
                session_id: Some(session.id.clone()),
                source_message_ids: job.covered_ids.clone(),
                importance: Some(self.settings.summary_importance),
                ..NewMemory::new(&session.character_id, MemoryKind::EventSummary, text.clone())
            })
            .await?;
        let summary = SessionSummary { through_id: job.through_id.clone(), text, memory_id: Some(record.id.clone()), created_at: self.now() };
        let stored = self
            .store
            .update_session(&session.id, |session| {
                // Checked again inside the transaction: another tab may have deleted it.
                if session.message_index(&summary.through_id).is_none() {
                    return Ok(None);
                }
                session.summaries.push(summary);
                Ok(Some(session.clone()))
            })
            .await;
        let session = match stored {
            Ok(Some(session)) => session,
            Ok(None) | Err(EngineError::NotFound { .. }) => {
                memory.forget(&record.id).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.wants_summary(&session) {
            self.summary_wanted.insert(session.id.clone());
        }
        Ok(())
    }

    /// Start the character's note on the summary through `through_id`, if that summary was
    /// stored (the chat did not change under it).
    async fn begin_note<M: ChatModel>(&mut self, model: &mut M, session_id: &str, through_id: &str) -> Result<Option<NoteJob>> {
        let Some(session) = self.store.get_session(session_id).await? else { return Ok(None) };
        let Some(summary) = session.summaries.iter().rev().find(|s| s.through_id == through_id) else { return Ok(None) };
        let character = self.character(&session.character_id).await?.character()?;
        Ok(Some(NoteJob::begin(model, &session, &character, &summary.text, self.settings.summary_max_tokens / 2)?))
    }

    async fn store_note(&mut self, job: NoteJob) -> Result<()> {
        let text = job.cleaned_text();
        if text.is_empty() {
            return Ok(());
        }
        // Gone meanwhile (removed in another tab): nothing to note.
        let Some(mut stored) = self.store.get_character(&job.character_id).await? else { return Ok(()) };
        stored.notes.push(PersonaNote { id: new_id(), text, created_at: self.now(), session_id: Some(job.session_id) });
        let excess = stored.notes.len().saturating_sub(MAX_PERSONA_NOTES);
        stored.notes.drain(..excess);
        self.store.put_character(&stored).await
    }

    /// Stop a summary under way (it is tried again later). Replies call this themselves.
    pub fn cancel_background<M: ChatModel>(&mut self, model: &mut M) {
        if let Some(job) = self.summary.take() {
            model.abort();
            self.summary_wanted.insert(job.session_id);
        }
        if self.note.take().is_some() {
            // A note is not tried again: the next summary brings the next one.
            model.abort();
        }
        if self.rewarming {
            model.abort();
            self.rewarming = false;
        }
    }

    /// Queue a session for a summary check, e.g. after a reload.
    pub fn want_summary(&mut self, session_id: &str) {
        self.summary_wanted.insert(session_id.to_string());
    }

    // ---- everything at once -----------------------------------------------------------

    /// Every character, session and memory as one JSON document.
    pub async fn export_all<E: TextEmbedder, S: Store>(&self, memory: &Memory<E, S>) -> Result<Value> {
        crate::backup::export_all(&self.store, memory, self.now()).await
    }

    /// Restore a document from [`Self::export_all`], replacing items with the same ids and
    /// keeping others. Everything is checked before anything is written, and written in one
    /// transaction where the store can (all of it or none). A character or session stored here
    /// that changed after the backup's copy is replaced only with `replace_newer`; otherwise
    /// the import fails with [`EngineError::NewerData`] and writes nothing.
    pub async fn import_all<E: TextEmbedder, S: Store>(
        &mut self,
        memory: &mut Memory<E, S>,
        backup: &Value,
        replace_newer: bool,
    ) -> Result<crate::backup::ImportCounts> {
        self.ensure_idle()?;
        self.last_prompts.clear();
        crate::backup::import_all(&self.store, memory, backup, replace_newer).await
    }

    /// Delete every character, session and memory (unreadable records too): one transaction
    /// where the store holds the memories, which nothing stored can block.
    pub async fn wipe<M: ChatModel, E: TextEmbedder, S: Store>(&mut self, model: &mut M, memory: &mut Memory<E, S>) -> Result<()> {
        self.ensure_idle()?;
        self.cancel_background(model);
        self.summary_wanted.clear();
        self.last_prompts.clear();
        self.store.clear().await?;
        if self.store.holds_memories() {
            memory.unload();
            Ok(())
        } else {
            memory.wipe().await.map(|_| ()).map_err(Into::into)
        }
    }

    /// Stored records that could not be read and were set aside.
    pub async fn unreadable(&self) -> Result<Vec<UnreadableRecord>> {
        self.store.unreadable().await
    }

    /// [`Self::wipe`] where no model was ever given to this engine (a page that has not loaded
    /// one yet), so no summary can be under way to stop.
    pub async fn wipe_stored<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>) -> Result<()> {
        self.ensure_idle()?;
        if self.summary.is_some() || self.note.is_some() {
            return Err(EngineError::Busy);
        }
        self.summary_wanted.clear();
        self.last_prompts.clear();
        self.store.clear().await?;
        if self.store.holds_memories() {
            memory.unload();
            Ok(())
        } else {
            memory.wipe().await.map(|_| ()).map_err(Into::into)
        }
    }
}

pub(crate) fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(EngineError::BadRequest("the message is empty".into()));
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(EngineError::BadRequest(format!("the message is {} bytes; at most {MAX_MESSAGE_BYTES} are accepted", text.len())));
    }
    Ok(())
}
