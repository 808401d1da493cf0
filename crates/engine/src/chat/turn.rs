//! The chat turn.
//!
//! One turn, in the order [`ChatEngine::begin_send`] and [`ChatEngine::next_event`] run it:
//!
//! 1. the user's message is stored with the session, and written to memory together with the
//!    facts it states ([`crate::facts`]);
//! 2. memories are retrieved for it (leaving out messages the prompt shows anyway) and the
//!    lorebooks scanned, inside [`persona::assemble_prompt`], which lays the prompt out with a
//!    long stable prefix;
//! 3. the prompt goes through the model's chat template; the generator keeps the KV cache of
//!    the prefix it shares with the last prompt and prefills only the rest;
//! 4. tokens stream out as events, split into thought / action / speech by
//!    [`persona::ThoughtParser`];
//! 5. the reply is stored, written to memory with its facts, and the session is queued for a
//!    rolling summary, which [`ChatEngine::background_step`] writes with the model itself when
//!    nothing else runs ([`crate::summary`]).
//!
//! While the reply streams it is saved every [`super::EngineSettings::partial_save_ms`] (and
//! whenever [`ChatEngine::save_partial`] is called), marked unfinished, so a reload keeps it.
//! Regenerating keeps the old reply: the new one is added as another version of the same
//! message ([`crate::types::Message::swipes`]) and shown once it is complete. Every write of the
//! session goes through [`ChatStore::update_session`], so replies, summaries and other tabs
//! never overwrite each other.

use std::collections::{HashSet, VecDeque};

use llm::{DryParams, GenerateOptions, SamplingParams};
use memory::record::new_id;
use memory::{ListFilter, Memory, MemoryKind, NewMemory, ScoreParts, SearchHit, SearchQuery, Store, TextEmbedder};
use persona::{AssembledPrompt, Character, ChatMessage, HistorySummary, MemoryItem, PromptInput, SegmentDelta, SegmentKind, ThoughtParser, assemble_prompt};
use serde::{Deserialize, Serialize};

use super::{ChatEngine, PromptDebug, check_text, date_label, non_empty, speaker_role};
use crate::error::{EngineError, Result};
use crate::facts::{fact_sentences, fact_text};
use crate::store::ChatStore;
use crate::model::ChatModel;
use crate::types::{Message, Session, Speaker, Swipe};

mod extend;

/// What a reply starts with when the character's inner thoughts are on.
const THOUGHT_OPENER: &str = "[";
/// Put after a closed thought when the model would end the reply there: a small model writes
/// its thought and stops, and goes on to speech once the text after the bracket has begun
/// (`confidant eval`'s persona set measures it, EVAL.md).
const SPEECH_OPENER: &str = " ";

/// Per-reply generation settings.
#[derive(Clone, Debug)]
pub struct ReplyOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
}

impl Default for ReplyOptions {
    fn default() -> Self {
        // SmolLM2's card suggests a low temperature; role-play wants a little more variety.
        // DRY at the strength role-play front ends use (multiplier 0.8, base 1.75, repeats of
        // 2 tokens free) stops a small model from copying its greeting or an earlier reply:
        // `confidant eval` measures the echo rate with and without it (EVAL.md).
        let dry = DryParams { multiplier: 0.8, ..DryParams::default() };
        Self { max_tokens: 200, sampling: SamplingParams { temperature: 0.5, top_p: 0.9, repeat_penalty: 1.1, dry, ..SamplingParams::default() } }
    }
}

/// Token counts of a generation: a chat reply, or a plain completion (the browser bindings send
/// both as they are: one type, snake_case as OpenAI's `usage`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// Speeds and times of a generation (chat reply or completion), snake_case like [`Usage`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens a second (only those not reused from the cache).
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// Prompt tokens actually run; the rest came from the cache.
    pub prefilled_tokens: usize,
    /// Device work per prompt token run (zeros on the CPU backend but for its reads).
    #[serde(default)]
    pub prefill_work: TokenWork,
    /// Device work per token decoded after the prompt.
    #[serde(default)]
    pub decode_work: TokenWork,
}

/// What one token asked of the device, on average (`llm::device_work`): GPU dispatches, host
/// writes and blocking reads back to the host, with their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenWork {
    pub dispatches: f64,
    pub uploads: f64,
    pub upload_bytes: f64,
    pub readbacks: f64,
    pub readback_bytes: f64,
    /// Reads during which the device had nothing else queued (saved records may lack it).
    #[serde(default)]
    pub blocking_readbacks: f64,
}

impl From<llm::DeviceWorkPerToken> for TokenWork {
    fn from(w: llm::DeviceWorkPerToken) -> Self {
        Self {
            dispatches: w.dispatches,
            uploads: w.uploads,
            upload_bytes: w.upload_bytes,
            readbacks: w.readbacks,
            readback_bytes: w.readback_bytes,
            blocking_readbacks: w.blocking_readbacks,
        }
    }
}

impl Usage {
    pub fn of(stats: &llm::GenerationStats) -> Self {
        Self {
            prompt_tokens: stats.prompt_tokens,
            cached_tokens: stats.prompt_tokens.saturating_sub(stats.prefilled_tokens),
            completion_tokens: stats.completion_tokens,
            total_tokens: stats.prompt_tokens + stats.completion_tokens,
        }
    }
}

impl Timings {
    pub fn of(stats: &llm::GenerationStats) -> Self {
        Self {
            prefill_tok_s: stats.prefill_tok_s(),
            decode_tok_s: stats.decode_tok_s(),
            prefill_seconds: stats.prefill_seconds,
            decode_seconds: stats.decode_seconds,
            prefilled_tokens: stats.prefilled_tokens,
            prefill_work: stats.prefill_work_per_token().into(),
            decode_work: stats.decode_work_per_token().into(),
        }
    }
}

/// What a turn streams, in order: `Memory` once, `Progress` while a long prompt is read, then
/// thought / action / text pieces, then `Done`.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnEvent {
    /// The memories put into the prompt (embeddings left out).
    Memory { hits: Vec<SearchHit> },
    /// The model is reading the prompt: `done` of `total` tokens (those not reused from the
    /// cache). Sent at the start and after each chunk when the prompt takes more than one chunk
    /// ([`super::EngineSettings::prefill_chunk`]); the first piece of the reply follows the last.
    Progress { done: usize, total: usize },
    /// A piece of the reply; `opens` starts a new segment.
    Thought { text: String, opens: bool },
    Action { text: String, opens: bool },
    Text { text: String, opens: bool },
    /// The reply as stored (`None` if it came out empty and nothing was stored, or for a
    /// draft). `draft`: the user's turn written by [`ChatEngine::begin_impersonate`] (nothing
    /// is stored). `finish_reason`: "stop", "length" or "abort".
    Done { message: Option<Message>, draft: Option<String>, usage: Usage, timings: Timings, finish_reason: String },
}

/// A reply being generated.
pub(super) struct PendingTurn {
    session: Session,
    character: Character,
    options: ReplyOptions,
    /// Whether the prompt is assembled and the generator started: the first
    /// [`ChatEngine::next_event`] does it, so sending returns as soon as the message is stored.
    started: bool,
    /// The user's message whose memories (its embedding, the facts it states) are still to be
    /// written: that waits for the end of the reply, which does not need them.
    unremembered: Option<String>,
    parser: ThoughtParser,
    /// Everything the model wrote.
    raw: String,
    /// How much of `raw` went to the parser (the rest may be the start of a stop string).
    parsed_len: usize,
    /// Speaker lines that end the reply: a small model goes on writing the user's part.
    stops: Vec<String>,
    /// "Name:" — small models often open the reply with their own speaker label; it is dropped.
    /// Empty once the start of the reply has been checked.
    own_label: String,
    queue: VecDeque<TurnEvent>,
    aborted: bool,
    stopped_early: bool,
    finished: bool,
    /// The id the reply is stored under (as a message, or as a version of `replaces`).
    reply_id: String,
    /// Regenerating: the id of the reply being replaced, which stays until this one is complete.
    replaces: Option<String>,
    /// When the reply was last saved unfinished (unix ms; the turn's start before that).
    last_save: u64,
    /// The memories the prompt used, noted on the reply.
    used_memory_ids: Vec<String>,
    /// Continuing: the reply being extended (its text is the start of this one).
    continues: Option<extend::Continued>,
    /// Writing a draft of the user's next turn, which is not stored.
    impersonating: bool,
    /// The prompt's tokens, up to where the reply starts (the thought opener not included):
    /// the speech is pre-started by running the model again from here.
    prompt_tokens: Vec<u32>,
    /// Tokens the model wrote before the speech was pre-started (counted in the reply's usage).
    earlier_completion_tokens: usize,
    /// Whether the speech has been pre-started (once per reply).
    speech_prestarted: bool,
}

impl PendingTurn {
    fn new(session: Session, character: Character, options: ReplyOptions, unremembered: Option<String>) -> Self {
        // Brackets and parentheses are markup only in the inner-thoughts format.
        let parser = ThoughtParser::for_thoughts(character.inner_thoughts().enabled);
        Self {
            session,
            character,
            options,
            reply_id: new_id(),
            replaces: None,
            last_save: 0,
            started: false,
            unremembered,
            parser,
            used_memory_ids: Vec::new(),
            continues: None,
            impersonating: false,
            prompt_tokens: Vec::new(),
            earlier_completion_tokens: 0,
            speech_prestarted: false,
            raw: String::new(),
            parsed_len: 0,
            stops: Vec::new(),
            own_label: String::new(),
            queue: VecDeque::new(),
            aborted: false,
            stopped_early: false,
            finished: false,
        }
    }
}

impl<C: ChatStore> ChatEngine<C> {
    /// Write the memory records of a message (see [`Self::message_memories`]); their ids.
    pub(super) async fn remember_message<E: TextEmbedder, S: Store>(
        &self,
        memory: &mut Memory<E, S>,
        session: &Session,
        character: &Character,
        message: &Message,
    ) -> Result<Vec<String>> {
        let new = self.message_memories(memory, session, character, message).await?;
        if new.is_empty() {
            return Ok(Vec::new());
        }
        Ok(memory.add_many(new).await?.into_iter().map(|r| r.id).collect())
    }

    /// Memory records for a message: the message itself and, for the user's, the facts it
    /// states (what a character says about the user may be made up, so its replies give
    /// none). With a character that shares the user's profile, facts that go to the profile
    /// get no record of their own (they are learnt into the profile here).
    async fn message_memories<E: TextEmbedder, S: Store>(&self, memory: &mut Memory<E, S>, session: &Session, character: &Character, message: &Message) -> Result<Vec<NewMemory>> {
        if message.text.trim().is_empty() || message.greeting {
            return Ok(Vec::new());
        }
        let speaker = match message.role {
            Speaker::User => session.user_name.as_str(),
            Speaker::Assistant => character.display_name(),
        };
        let mut new = vec![NewMemory {
            id: Some(message.id.clone()),
            session_id: Some(session.id.clone()),
            source_message_ids: vec![message.id.clone()],
            created_at: Some(message.created_at),
            ..NewMemory::new(&session.character_id, MemoryKind::Message, format!("{speaker}: {}", message.text.trim()))
        }];
        let in_profile = self.learn_user_facts(memory, session, character, message).await?;
        let sentences = if message.role == Speaker::User { fact_sentences(&message.text) } else { Vec::new() };
        for sentence in sentences.into_iter().filter(|s| !in_profile.contains(s)) {
            new.push(NewMemory {
                session_id: Some(session.id.clone()),
                source_message_ids: vec![message.id.clone()],
                importance: Some(self.settings.fact_importance),
                created_at: Some(message.created_at),
                ..NewMemory::new(&session.character_id, MemoryKind::UserFact, fact_text(speaker, &sentence))
            });
        }
        Ok(new)
    }

    /// Store the user's message and start a reply to it; then call [`Self::next_event`] until
    /// it returns `None`. Only the session is written here, so the message can be shown at once:
    /// the first `next_event` assembles the prompt (retrieving memories) and starts the model,
    /// and the message's own memories are written when the reply ends.
    pub async fn begin_send<M: ChatModel>(&mut self, model: &mut M, session_id: &str, text: &str, options: &ReplyOptions) -> Result<Message> {
        self.ensure_idle()?;
        check_text(text)?;
        self.cancel_background(model);
        let session = self.session(session_id).await?;
        let character = self.character(&session.character_id).await?.character()?;
        let now = self.now();
        let message = Message {
            id: new_id(),
            role: Speaker::User,
            text: text.to_string(),
            thought: None,
            action: None,
            raw: text.to_string(),
            created_at: now,
            greeting: false,
            memory_ids: Vec::new(),
            used_memory_ids: Vec::new(),
            unfinished: false,
            swipes: Vec::new(),
            swipe: 0,
        };
        let sent = message.clone();
        // Appended inside the store's transaction: a message another tab stored meanwhile stays.
        let session = self
            .store
            .update_session(session_id, |session| {
                session.messages.push(sent);
                session.updated_at = now;
                Ok(session.clone())
            })
            .await?;
        let mut turn = PendingTurn::new(session, character, options.clone(), Some(message.id.clone()));
        turn.last_save = now;
        self.turn = Some(turn);
        Ok(message)
    }

    /// Write another version of the latest reply (a swipe; the old one is kept and can be
    /// shown again with [`Self::choose_swipe`]); then call [`Self::next_event`] until it returns
    /// `None`. While the greeting is the only reply, this shows the next of the card's greetings
    /// instead.
    pub async fn begin_regenerate<M: ChatModel, E: TextEmbedder, S: Store>(
        &mut self,
        model: &mut M,
        // The replaced reply's memories move when the new one is complete (in `next_event`).
        _memory: &mut Memory<E, S>,
        session_id: &str,
        options: &ReplyOptions,
    ) -> Result<()> {
        self.ensure_idle()?;
        self.cancel_background(model);
        let session = self.session(session_id).await?;
        let character = self.character(&session.character_id).await?.character()?;
        let mut replaces = None;
        match session.messages.last() {
            Some(last) if last.greeting => {
                let count = character.greetings().len().max(1);
                let message = self.set_greeting(session_id, (session.greeting_index + 1) % count).await?;
                let mut turn = PendingTurn::new(session, character, options.clone(), None);
                turn.started = true;
                turn.finished = true;
                turn.queue.push_back(TurnEvent::Text { text: message.text.clone(), opens: true });
                turn.queue.push_back(TurnEvent::Done { message: Some(message), draft: None, usage: Usage::default(), timings: Timings::default(), finish_reason: "stop".into() });
                self.turn = Some(turn);
                return Ok(());
            }
            // Kept, with its memories, until the new version is complete.
            Some(last) if last.role == Speaker::Assistant => replaces = Some(last.id.clone()),
            Some(_) => {} // the last message is the user's (a reply failed or was empty): answer it
            None => return Err(EngineError::BadRequest("the session has no messages to reply to".into())),
        }
        // A user message left without memories (its reply failed) gets them with this reply.
        let unremembered = session
            .messages
            .iter()
            .rev()
            .find(|m| Some(&m.id) != replaces.as_ref())
            .filter(|m| m.role == Speaker::User && m.memory_ids.is_empty())
            .map(|m| m.id.clone());
        let mut turn = PendingTurn::new(session, character, options.clone(), unremembered);
        turn.replaces = replaces;
        turn.last_save = self.now();
        self.turn = Some(turn);
        Ok(())
    }


    fn prompt_input<'a>(
        &'a self,
        session: &'a Session,
        character: &'a Character,
        history: &'a [ChatMessage],
        summaries: &'a [HistorySummary],
        memories: &'a [MemoryItem],
        user_profile: &'a [MemoryItem],
        persona_notes: &'a [String],
    ) -> PromptInput<'a> {
        PromptInput {
            character,
            user_name: &session.user_name,
            history,
            summaries,
            memories,
            user_profile,
            persona_notes,
            global_lorebooks: &self.settings.global_lorebooks,
            global_system_prompt: self.settings.global_system_prompt.as_deref(),
        }
    }

    /// Assemble the prompt of the turn under way (memories retrieved, lorebooks scanned) and
    /// start the model on it.
    async fn start_reply<M: ChatModel, E: TextEmbedder, S: Store>(&mut self, model: &mut M, memory: &mut Memory<E, S>) -> Result<()> {
        let Some(mut turn) = self.turn.take() else { return Ok(()) };
        let result = self.start_model(model, memory, &mut turn).await;
        // Back in place either way: a failed start ends the turn through `fail_turn`.
        self.turn = Some(turn);
        result
    }

    async fn start_model<M: ChatModel, E: TextEmbedder, S: Store>(&mut self, model: &mut M, memory: &mut Memory<E, S>, turn: &mut PendingTurn) -> Result<()> {
        let (session, character, options) = (&turn.session, &turn.character, &turn.options);
        // The reply being replaced is not part of the conversation the new one answers.
        let replaced = turn.replaces.as_deref().unwrap_or_default();
        // A reply being continued is not history but the start of what the model writes.
        let continued = turn.continues.as_ref().map(|c| c.message_id.as_str()).unwrap_or_default();
        let shown: Vec<&Message> = session.messages.iter().filter(|m| m.id != replaced && m.id != continued).collect();
        // Every id the reply's own message has been stored under (the version being replaced or
        // extended, and its other versions): its message memory holds its text under that id,
        // and would otherwise be the nearest memory to the question it answered.
        let own_ids: HashSet<&str> = [replaced, continued]
            .into_iter()
            .filter(|id| !id.is_empty())
            .filter_map(|id| session.message_with_version(id))
            .flat_map(|at| {
                let message = &session.messages[at];
                message.swipes.iter().map(|s| s.id.as_str()).chain([message.id.as_str()])
            })
            .chain([turn.reply_id.as_str()])
            .collect();

        let history: Vec<ChatMessage> = shown.iter().map(|m| ChatMessage::new(speaker_role(m.role), m.raw.clone())).collect();
        let summaries: Vec<HistorySummary> =
            session.latest_summary().map(|(i, s)| HistorySummary { start: 0, end: i + 1, text: s.text.clone() }).into_iter().collect();
        let mut prompt_options = self.settings.prompt.clone();
        prompt_options.context_tokens = prompt_options.context_tokens.min(model.context_length());
        prompt_options.reply_tokens = options.max_tokens.min(prompt_options.context_tokens / 2);
        let counter = |text: &str| model.count_tokens(text);

        // Which messages the prompt shows anyway: their verbatim memories would only repeat them.
        let user_profile = self.user_profile_items(character).await?;
        let notes = self.character(&session.character_id).await?.prompt_notes();
        let without_memories = assemble_prompt(&self.prompt_input(session, character, &history, &summaries, &[], &user_profile, &notes), &prompt_options, &counter);
        let visible: HashSet<&str> = shown[without_memories.history_start.min(shown.len())..].iter().map(|m| m.id.as_str()).collect();
        // ... and their texts: a message recorded earlier with the same words says nothing new.
        let visible_texts: HashSet<&str> = shown[without_memories.history_start.min(shown.len())..].iter().map(|m| m.text.trim()).collect();
        let latest = shown.last().map(|m| m.id.as_str()).unwrap_or_default();
        let query = shown.iter().rev().find(|m| m.role == Speaker::User).map(|m| m.text.clone()).unwrap_or_default();
        // Pinned memories always (the prompt keeps them within its budget for them), then the best
        // of the search.
        let pinned = memory.list(ListFilter { character_id: Some(session.character_id.clone()), pinned: Some(true), ..Default::default() }).await?;
        let mut hits: Vec<SearchHit> = pinned
            .into_iter()
            .map(|record| SearchHit { score: 1.0, relevance: 0.0, recency: 1.0, importance: record.importance, normalized: ScoreParts::default(), record })
            .collect();
        if !query.trim().is_empty() {
            let found = memory.search(SearchQuery::new(&session.character_id, &query, self.settings.memories_searched)).await?;
            hits.extend(found.into_iter().filter(|h| !h.record.pinned).take(prompt_options.max_memories * 2));
        }
        // What the user said that the profile says is no longer true ("I live in Paris" once
        // they moved) is not recalled as if it were.
        let outdated = self.outdated_messages(character).await?;
        // A fact and the message it was taken from say the same thing: whichever ranks first
        // stands for both.
        let mut sources_seen: HashSet<String> = HashSet::new();
        let hits: Vec<SearchHit> = hits
            .into_iter()
            .filter(|h| {
                let sources = &h.record.source_message_ids;
                // Nothing from the message being answered, the reply's own message or what the
                // profile says is no longer true; no visible message twice.
                let left_out = own_ids.contains(h.record.id.as_str()) || sources.iter().any(|s| s == latest || own_ids.contains(s.as_str()) || outdated.contains(s));
                let shown_anyway = h.record.kind == MemoryKind::Message && !sources.is_empty() && sources.iter().all(|s| visible.contains(s.as_str()));
                !left_out && !shown_anyway
            })
            .filter(|h| {
                // A message memory reads "Name: text".
                let said = h.record.text.split_once(": ").map_or(h.record.text.as_str(), |(_, t)| t).trim();
                !(h.record.kind == MemoryKind::Message && visible_texts.contains(said))
            })
            .filter(|h| {
                let sources = &h.record.source_message_ids;
                let new = sources.is_empty() || !sources.iter().any(|s| sources_seen.contains(s));
                sources_seen.extend(sources.iter().cloned());
                new
            })
            .map(|mut h| {
                h.record.embedding = Vec::new();
                h
            })
            .collect();
        let items: Vec<MemoryItem> = hits.iter().map(|h| MemoryItem { label: date_label(h.record.created_at), text: h.record.text.clone(), pinned: h.record.pinned }).collect();
        let assembled: AssembledPrompt =
            assemble_prompt(&self.prompt_input(session, character, &history, &summaries, &items, &user_profile, &notes), &prompt_options, &counter);
        if assembled.over_budget {
            return Err(EngineError::BadRequest(format!(
                "the character and the latest message need {} tokens, more than the {} the context leaves",
                assembled.total_tokens, assembled.budget
            )));
        }
        let messages: Vec<llm::ChatMessage> = assembled.messages.iter().map(|m| llm::ChatMessage::new(m.role.as_str(), m.content.clone())).collect();
        let mut rendered = model.render_chat(&messages)?;
        let mut tokens = model.encode_chat(&messages)?;
        // The persona system message's tokens (what the prompt shares with a chat of that
        // message alone), read back after a background summary.
        let persona_only = model.encode_chat(&messages[..1.min(messages.len())])?;
        let shared = persona_only.iter().zip(&tokens).take_while(|(a, b)| a == b).count();
        self.persona_prefix.insert(session.id.clone(), tokens[..shared].to_vec());
        if let Some(start) = turn.continues.as_ref().map(|c| c.raw.clone()) {
            // Continuing: the reply so far is where the model picks up.
            tokens.extend(model.encode_text(&start)?);
            rendered.push_str(&start);
            // The parser takes the reply so far without streaming it: only what the model adds
            // is sent as events, and the stored message is the whole.
            turn.parsed_len = start.len();
            let _ = turn.parser.push(&start);
            turn.raw = start;
        } else if character.inner_thoughts().enabled {
            // With inner thoughts on, the reply is started with the thought marker (HER's
            // pre-filled turn): the model writes the thought first instead of perhaps forgetting it.
            turn.prompt_tokens = tokens.clone();
            tokens.extend(model.encode_text(THOUGHT_OPENER)?);
            rendered.push_str(THOUGHT_OPENER);
            turn.raw.push_str(THOUGHT_OPENER);
        }
        // The memories the prompt used, in its order (pinned first).
        let hits: Vec<SearchHit> = assembled.memory_indices.iter().filter_map(|&i| hits.get(i).cloned()).collect();
        turn.used_memory_ids = hits.iter().map(|h| h.record.id.clone()).collect();
        self.last_prompts.insert(
            session.id.clone(),
            PromptDebug {
                text: assembled.debug_view(),
                sections: assembled.sections.clone(),
                rendered,
                total_tokens: assembled.total_tokens,
                budget: assembled.budget,
                stable_messages: assembled.stable_messages,
                memories_used: assembled.memories_used,
                lore_entries: assembled.lore.entries.iter().map(|e| e.label.clone()).collect(),
            },
        );
        model.begin(tokens, GenerateOptions { max_tokens: options.max_tokens, sampling: options.sampling.clone(), ignore_eos: false, cache_prompt: true })?;
        let char_name = character.display_name().to_string();
        if turn.impersonating {
            // The model writes as the user: the character's line ends it, the user's label is its own.
            turn.stops = vec![format!("\n{char_name}:"), format!("{char_name}:"), format!("\n{}:", session.user_name)];
            turn.own_label = format!("{}:", session.user_name);
        } else {
            turn.stops = vec![format!("\n{}:", session.user_name), format!("\n{char_name}:"), format!("{}:", session.user_name)];
            turn.own_label = if turn.continues.is_some() { String::new() } else { format!("{char_name}:") };
        }
        turn.started = true;
        turn.queue.push_back(TurnEvent::Memory { hits });
        if let Some(p) = model.prefill_progress().filter(|p| p.total > self.settings.prefill_chunk) {
            turn.queue.push_back(TurnEvent::Progress { done: p.done, total: p.total });
        }
        Ok(())
    }

    /// Whether a reply is under way.
    pub fn is_generating(&self) -> bool {
        self.turn.is_some()
    }

    /// Stop the reply: the next [`Self::next_event`] stores what was written so far and
    /// reports `Done` with finish reason "abort".
    pub fn abort<M: ChatModel>(&mut self, model: &mut M) {
        if let Some(turn) = &mut self.turn
            && !turn.finished
        {
            turn.aborted = true;
            if turn.started {
                model.abort();
            }
        }
    }

    /// The next event of the reply under way; `None` when there is none (any more). Each call
    /// does one step of work: assembling the prompt, reading a chunk of it, or one token.
    pub async fn next_event<M: ChatModel, E: TextEmbedder, S: Store>(&mut self, model: &mut M, memory: &mut Memory<E, S>) -> Result<Option<TurnEvent>> {
        loop {
            let now = self.now();
            let save_every = self.settings.partial_save_ms;
            let Some(turn) = &mut self.turn else { return Ok(None) };
            if let Some(event) = turn.queue.pop_front() {
                return Ok(Some(event));
            }
            if turn.finished {
                self.turn = None;
                return Ok(None);
            }
            if !turn.started && !turn.aborted {
                if let Err(e) = self.start_reply(model, memory).await {
                    return Err(self.fail_turn(memory, e).await);
                }
                continue;
            }
            let step = if turn.aborted || turn.stopped_early {
                None
            } else {
                match model.prefill(self.settings.prefill_chunk).await {
                    Ok(Some(p)) => return Ok(Some(TurnEvent::Progress { done: p.done, total: p.total })),
                    Ok(None) => {}
                    Err(e) => return Err(self.fail_turn(memory, e.into()).await),
                }
                match model.step().await {
                    Ok(step) => step,
                    Err(e) => return Err(self.fail_turn(memory, e.into()).await),
                }
            };
            match step {
                Some(step) => {
                    turn.raw.push_str(&step.text);
                    feed_parser(turn, false);
                    if now.saturating_sub(turn.last_save) >= save_every {
                        // Best effort: the final write reports a refusal; a failed save is tried
                        // again at the next interval.
                        let _ = self.save_partial().await;
                    }
                }
                None => {
                    feed_parser(turn, true);
                    if wants_speech(turn, model.stats()) {
                        // The model closed its thought and stopped: the speech is started for it.
                        if let Err(e) = prestart_speech(turn, model) {
                            return Err(self.fail_turn(memory, e).await);
                        }
                        continue;
                    }
                    let result = self.finish_turn(model, memory).await;
                    if result.is_err() {
                        self.turn = None;
                    }
                    result?;
                }
            }
        }
    }

    /// Save the reply written so far, marked unfinished (a new message, or a version of the
    /// reply being regenerated that is not shown yet). Called every
    /// [`super::EngineSettings::partial_save_ms`] while the reply streams, and by the browser
    /// when the page is hidden or closed.
    pub async fn save_partial(&mut self) -> Result<()> {
        let now = self.now();
        let Some(turn) = &mut self.turn else { return Ok(()) };
        // A draft of the user's turn is never stored.
        if !turn.started || turn.finished || turn.impersonating {
            return Ok(());
        }
        turn.last_save = now;
        let reply = turn.parser.clone().finish();
        if reply.speech().trim().is_empty() && reply.thought().trim().is_empty() && reply.action().trim().is_empty() {
            return Ok(());
        }
        let version = Swipe {
            id: turn.reply_id.clone(),
            text: reply.speech(),
            thought: non_empty(reply.thought()),
            action: non_empty(reply.action()),
            raw: reply.to_text(true),
            created_at: now,
            unfinished: true,
            used_memory_ids: turn.used_memory_ids.clone(),
        };
        let replaces = turn.replaces.clone();
        self.store
            .update_session(&turn.session.id, |session| {
                place_reply(session, &version, replaces.as_deref(), false);
                Ok(())
            })
            .await
    }

    /// The turn cannot go on: it ends with the user's message stored (and its memories written,
    /// if they can be) and no reply beyond what was saved unfinished. Returns `error`.
    async fn fail_turn<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, error: EngineError) -> EngineError {
        if let Some(turn) = self.turn.take()
            && let Some(id) = &turn.unremembered
        {
            // Best effort: the turn's own error is the one to report.
            let _ = self.remember_stored(memory, &turn.session, &turn.character, &[id.as_str()]).await;
        }
        error
    }

    /// Write the memories of messages `ids` (as stored in `session`) and note their ids on the
    /// stored messages, in one transaction. Memories of a message deleted meanwhile (in another
    /// tab) are forgotten again. Returns the session as stored.
    async fn remember_stored<E: TextEmbedder, S: Store>(&self, memory: &mut Memory<E, S>, session: &Session, character: &Character, ids: &[&str]) -> Result<Session> {
        // All the messages' records in one write, so their texts are embedded as one batch (one
        // pass of the embedder for a turn's message and reply instead of one each).
        let mut counts: Vec<(String, usize)> = Vec::new();
        let mut new = Vec::new();
        for id in ids {
            if let Some(index) = session.message_index(id) {
                let records = self.message_memories(memory, session, character, &session.messages[index]).await?;
                counts.push((id.to_string(), records.len()));
                new.extend(records);
            }
        }
        let written = if new.is_empty() { Vec::new() } else { memory.add_many(new).await? };
        // add_many returns the records in the order given.
        let mut written = written.into_iter().map(|r| r.id);
        let notes: Vec<(String, Vec<String>)> = counts.into_iter().map(|(id, count)| (id, written.by_ref().take(count).collect())).collect();
        let (stored, orphans) = self
            .store
            .update_session(&session.id, |stored| {
                let mut orphans = Vec::new();
                for (id, memory_ids) in notes {
                    match stored.message_index(&id) {
                        Some(index) => stored.messages[index].memory_ids = memory_ids,
                        None => orphans.extend(memory_ids),
                    }
                }
                Ok((stored.clone(), orphans))
            })
            .await?;
        if !orphans.is_empty() {
            memory.forget_many(&orphans).await?;
        }
        Ok(stored)
    }

    async fn finish_turn<M: ChatModel, E: TextEmbedder, S: Store>(&mut self, model: &mut M, memory: &mut Memory<E, S>) -> Result<()> {
        let now = self.now();
        let Some(turn) = &mut self.turn else { return Ok(()) };
        turn.finished = true;
        let parser = std::mem::take(&mut turn.parser);
        let reply = parser.finish();
        // Stopped before the model started: nothing ran.
        let stats = if turn.started { model.stats().clone() } else { llm::GenerationStats::default() };
        let finish_reason = if turn.aborted {
            "abort".to_string()
        } else if turn.stopped_early {
            "stop".to_string()
        } else {
            stats.finish_reason.map(|r| r.as_str()).unwrap_or("stop").to_string()
        };
        let mut usage = Usage::of(&stats);
        usage.completion_tokens += turn.earlier_completion_tokens;
        usage.total_tokens += turn.earlier_completion_tokens;
        let timings = Timings::of(&stats);
        if turn.impersonating {
            let draft = reply.speech().trim().to_string();
            turn.queue.push_back(TurnEvent::Done { message: None, draft: Some(draft), usage, timings, finish_reason });
            return Ok(());
        }
        let character = turn.character.clone();
        let unremembered = turn.unremembered.take();
        let continued_memories = turn.continues.as_ref().map(|c| c.memory_ids.clone()).unwrap_or_default();
        let (session_id, reply_id, replaces) = (turn.session.id.clone(), turn.reply_id.clone(), turn.replaces.clone());
        let used_memory_ids = turn.used_memory_ids.clone();
        let speech = reply.speech();
        let version = (!(speech.trim().is_empty() && reply.thought().trim().is_empty() && reply.action().trim().is_empty())).then(|| Swipe {
            id: reply_id.clone(),
            text: speech,
            thought: non_empty(reply.thought()),
            action: non_empty(reply.action()),
            raw: reply.to_text(true),
            created_at: now,
            unfinished: false,
            used_memory_ids,
        });
        // Stored first, in one transaction, so a refused memory write cannot lose the reply; a
        // regenerated one becomes the shown version only now.
        let (session, displaced) = self
            .store
            .update_session(&session_id, |session| {
                let displaced = match &version {
                    Some(v) => place_reply(session, v, replaces.as_deref(), true),
                    None => {
                        remove_version(session, &reply_id);
                        Vec::new()
                    }
                };
                session.updated_at = now;
                Ok((session.clone(), displaced))
            })
            .await?;
        // Then the memories: the replaced version's go, the user's message's (left until now,
        // out of the reply's way) and the reply's come.
        memory.forget_many(&displaced).await?;
        // A continued reply's memories are written again for its whole text.
        if version.is_some() {
            memory.forget_many(&continued_memories).await?;
        }
        let mut remember: Vec<&str> = Vec::new();
        if let Some(id) = &unremembered {
            remember.push(id);
        }
        if version.is_some() {
            remember.push(&reply_id);
        }
        let session = if remember.is_empty() { session } else { self.remember_stored(memory, &session, &character, &remember).await? };
        let message = version.is_some().then(|| session.message_with_version(&reply_id).map(|i| session.messages[i].clone())).flatten();
        if message.is_some() && self.wants_summary(&session) {
            self.summary_wanted.insert(session.id.clone());
        }
        if let Some(turn) = &mut self.turn {
            turn.queue.push_back(TurnEvent::Done { message, draft: None, usage, timings, finish_reason });
        }
        Ok(())
    }
}

/// Whether the model ended a reply (end of text, not a stop string, the token limit or an abort)
/// right after its pre-started thought, with no speech yet, and there are tokens left for some.
fn wants_speech(turn: &PendingTurn, stats: &llm::GenerationStats) -> bool {
    if turn.speech_prestarted || turn.prompt_tokens.is_empty() || turn.aborted || turn.stopped_early || turn.impersonating {
        return false;
    }
    if stats.finish_reason != Some(llm::FinishReason::Stop) || turn.earlier_completion_tokens + stats.completion_tokens >= turn.options.max_tokens {
        return false;
    }
    let reply = turn.parser.clone().finish();
    turn.raw.trim_end().ends_with(']') && reply.thought().split_whitespace().next().is_some() && reply.speech().trim().is_empty()
}

/// Run the model again on the prompt, the reply so far and [`SPEECH_OPENER`] (the cache keeps
/// the shared prefix, so only the last few tokens are read).
fn prestart_speech<M: ChatModel>(turn: &mut PendingTurn, model: &mut M) -> Result<()> {
    turn.speech_prestarted = true;
    let written = model.stats().completion_tokens;
    turn.earlier_completion_tokens += written;
    turn.raw.truncate(turn.raw.trim_end().len());
    turn.parsed_len = turn.parsed_len.min(turn.raw.len());
    turn.raw.push_str(SPEECH_OPENER);
    feed_parser(turn, false);
    let mut tokens = turn.prompt_tokens.clone();
    tokens.extend(model.encode_text(&turn.raw)?);
    let max_tokens = turn.options.max_tokens.saturating_sub(turn.earlier_completion_tokens).max(1);
    model.begin(tokens, GenerateOptions { max_tokens, sampling: turn.options.sampling.clone(), ignore_eos: false, cache_prompt: true })?;
    Ok(())
}

/// Put reply `version` into `session`: an update of a version already stored under its id, else
/// a new version of the message `replaces` (regenerating), else a new message. `show`: it becomes
/// the message's shown version. Returns the memory ids of the version it displaced.
fn place_reply(session: &mut Session, version: &Swipe, replaces: Option<&str>, show: bool) -> Vec<String> {
    let at = session.message_with_version(&version.id).or_else(|| replaces.and_then(|r| session.message_with_version(r)));
    let Some(at) = at else {
        session.messages.push(Message {
            id: version.id.clone(),
            role: Speaker::Assistant,
            text: version.text.clone(),
            thought: version.thought.clone(),
            action: version.action.clone(),
            raw: version.raw.clone(),
            created_at: version.created_at,
            greeting: false,
            memory_ids: Vec::new(),
            used_memory_ids: version.used_memory_ids.clone(),
            unfinished: version.unfinished,
            swipes: Vec::new(),
            swipe: 0,
        });
        return Vec::new();
    };
    let message = &mut session.messages[at];
    if message.id == version.id {
        message.show(version);
        message.sync_shown();
        return Vec::new();
    }
    let index = match message.swipes.iter().position(|s| s.id == version.id) {
        Some(i) => {
            message.swipes[i] = version.clone();
            i
        }
        None => message.add_swipe(version.clone(), false),
    };
    if !show {
        return Vec::new();
    }
    message.swipe = index;
    message.show(version);
    std::mem::take(&mut message.memory_ids)
}

/// Remove a reply saved unfinished that came to nothing: its message, or its version.
fn remove_version(session: &mut Session, id: &str) {
    let Some(at) = session.message_with_version(id) else { return };
    let message = &mut session.messages[at];
    if message.swipes.is_empty() {
        if message.id == id {
            session.messages.remove(at);
        }
        return;
    }
    let Some(index) = message.swipes.iter().position(|s| s.id == id) else { return };
    if index == message.swipe {
        // Shown versions are complete ones; an unfinished one never is.
        return;
    }
    message.swipes.remove(index);
    if message.swipe > index {
        message.swipe -= 1;
    }
    if message.swipes.len() == 1 {
        message.swipes.clear();
        message.swipe = 0;
    }
}

/// Pass newly generated text to the parser, holding back a tail that may be the start of a
/// stop string; a complete stop string ends the reply there.
fn feed_parser(turn: &mut PendingTurn, at_end: bool) {
    if !turn.own_label.is_empty() {
        let trimmed = turn.raw.trim_start();
        if trimmed.starts_with(turn.own_label.as_str()) {
            // Skip the label and the spaces after it.
            let after = turn.raw.len() - trimmed.len() + turn.own_label.len();
            turn.parsed_len = turn.raw.len() - turn.raw[after..].trim_start().len();
            if turn.parsed_len == turn.raw.len() && !at_end {
                return;
            }
        } else if turn.own_label.starts_with(trimmed) && !at_end {
            // Could still become the label: wait for more text.
            return;
        }
        turn.own_label.clear();
    }
    let pending = &turn.raw[turn.parsed_len..];
    let mut cut = None;
    for stop in &turn.stops {
        // "Sam:" only counts at the very start or after a line break.
        let found = if stop.starts_with('\n') {
            turn.raw.find(stop.as_str())
        } else if turn.raw.trim_start().starts_with(stop.as_str()) {
            Some(0)
        } else {
            None
        };
        if let Some(at) = found {
            cut = Some(cut.map_or(at, |c: usize| c.min(at)));
        }
    }
    let upto = if let Some(at) = cut {
        turn.stopped_early = true;
        at.max(turn.parsed_len)
    } else if at_end {
        turn.raw.len()
    } else {
        // Hold back the longest tail that could begin a stop string.
        let mut hold = 0;
        for stop in &turn.stops {
            for len in (1..stop.len().min(pending.len()) + 1).rev() {
                if pending.is_char_boundary(pending.len() - len) && stop.starts_with(&pending[pending.len() - len..]) {
                    hold = hold.max(len);
                    break;
                }
            }
        }
        turn.raw.len() - hold
    };
    if upto > turn.parsed_len && turn.raw.is_char_boundary(upto) {
        let chunk = turn.raw[turn.parsed_len..upto].to_string();
        turn.parsed_len = upto;
        for delta in turn.parser.push(&chunk) {
            turn.queue.push_back(delta_event(delta));
        }
    }
    if cut.is_some() {
        turn.raw.truncate(turn.parsed_len);
    }
}

fn delta_event(delta: SegmentDelta) -> TurnEvent {
    let SegmentDelta { kind, text, opens } = delta;
    match kind {
        SegmentKind::Thought => TurnEvent::Thought { text, opens },
        SegmentKind::Action => TurnEvent::Action { text, opens },
        SegmentKind::Speech => TurnEvent::Text { text, opens },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn() -> PendingTurn {
        let session = Session {
            id: "s".into(),
            character_id: "c".into(),
            user_name: "Sam".into(),
            created_at: 0,
            updated_at: 0,
            greeting_index: 0,
            messages: Vec::new(),
            summaries: Vec::new(),
        };
        let mut turn = PendingTurn::new(session, Character::default(), ReplyOptions::default(), None);
        turn.stops = vec!["\nSam:".into(), "\nWren Okafor:".into(), "Sam:".into()];
        turn.own_label = "Wren Okafor:".into();
        turn.started = true;
        turn
    }

    /// Feed the pieces one by one as the model would write them; the streamed speech.
    fn speech(pieces: &[&str]) -> String {
        let mut turn = turn();
        for piece in pieces {
            // As next_event: no more steps once a stop string ended the reply.
            if turn.stopped_early {
                break;
            }
            turn.raw.push_str(piece);
            feed_parser(&mut turn, false);
        }
        feed_parser(&mut turn, true);
        turn.queue
            .iter()
            .map(|e| match e {
                TurnEvent::Text { text, .. } | TurnEvent::Action { text, .. } | TurnEvent::Thought { text, .. } => text.as_str(),
                _ => "",
            })
            .collect()
    }

    #[test]
    fn the_characters_own_speaker_label_is_dropped_from_the_start() {
        assert_eq!(speech(&[" Wren", " Ok", "afor", ":", " Hello", " there."]).trim(), "Hello there.");
        assert_eq!(speech(&["Wren Okafor: Hi."]).trim(), "Hi.");
    }

    #[test]
    fn a_reply_that_only_begins_like_the_label_is_kept() {
        assert_eq!(speech(&["Wren", " is", " here."]).trim(), "Wren is here.");
        assert_eq!(speech(&["Wr"]).trim(), "Wr");
        // Later in the reply the label is ordinary text (a line starting with it stops the reply).
        assert_eq!(speech(&["Yes. Wren Okafor: that's me."]).trim(), "Yes. Wren Okafor: that's me.");
    }

    #[test]
    fn the_users_label_still_ends_the_reply() {
        assert_eq!(speech(&["Fine.", "\nSam:", " more"]).trim(), "Fine.");
    }
}
