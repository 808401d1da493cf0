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

use std::collections::{HashSet, VecDeque};

use llm::{GenerateOptions, Generator, SamplingParams};
use memory::record::new_id;
use memory::{Memory, MemoryKind, NewMemory, SearchHit, SearchQuery, Store, TextEmbedder};
use persona::{AssembledPrompt, Character, ChatMessage, HistorySummary, MemoryItem, PromptInput, SegmentDelta, SegmentKind, ThoughtParser, assemble_prompt};
use serde::{Deserialize, Serialize};

use super::{ChatEngine, PromptDebug, check_text, date_label, non_empty, speaker_role};
use crate::error::{EngineError, Result};
use crate::facts::{fact_sentences, fact_text};
use crate::store::ChatStore;
use crate::types::{Message, Session, Speaker};

/// Per-reply generation settings.
#[derive(Clone, Debug)]
pub struct ReplyOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
}

impl Default for ReplyOptions {
    fn default() -> Self {
        // SmolLM2's card suggests a low temperature; role-play wants a little more variety.
        Self { max_tokens: 200, sampling: SamplingParams { temperature: 0.5, top_p: 0.9, repeat_penalty: 1.1, ..SamplingParams::default() } }
    }
}

/// Token counts of a reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
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
    /// The reply as stored (`None` if it came out empty and nothing was stored).
    /// `finish_reason`: "stop", "length" or "abort".
    Done { message: Option<Message>, usage: Usage, timings: Timings, finish_reason: String },
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
}

impl PendingTurn {
    fn new(session: Session, character: Character, options: ReplyOptions, unremembered: Option<String>) -> Self {
        Self {
            session,
            character,
            options,
            started: false,
            unremembered,
            parser: ThoughtParser::new(),
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
    /// Memory records for a message: the message itself and the facts it states.
    pub(super) async fn remember_message<E: TextEmbedder, S: Store>(
        &self,
        memory: &mut Memory<E, S>,
        session: &Session,
        character: &Character,
        message: &Message,
    ) -> Result<Vec<String>> {
        if message.text.trim().is_empty() || message.greeting {
            return Ok(Vec::new());
        }
        let (speaker, kind) = match message.role {
            Speaker::User => (session.user_name.as_str(), MemoryKind::UserFact),
            Speaker::Assistant => (character.display_name(), MemoryKind::CharacterFact),
        };
        let mut new = vec![NewMemory {
            id: Some(message.id.clone()),
            session_id: Some(session.id.clone()),
            source_message_ids: vec![message.id.clone()],
            created_at: Some(message.created_at),
            ..NewMemory::new(&session.character_id, MemoryKind::Message, format!("{speaker}: {}", message.text.trim()))
        }];
        for sentence in fact_sentences(&message.text) {
            new.push(NewMemory {
                session_id: Some(session.id.clone()),
                source_message_ids: vec![message.id.clone()],
                importance: Some(self.settings.fact_importance),
                created_at: Some(message.created_at),
                ..NewMemory::new(&session.character_id, kind, fact_text(speaker, &sentence))
            });
        }
        Ok(memory.add_many(new).await?.into_iter().map(|r| r.id).collect())
    }

    /// Store the user's message and start a reply to it; then call [`Self::next_event`] until
    /// it returns `None`. Only the session is written here, so the message can be shown at once:
    /// the first `next_event` assembles the prompt (retrieving memories) and starts the model,
    /// and the message's own memories are written when the reply ends.
    pub async fn begin_send(&mut self, model: &mut Generator, session_id: &str, text: &str, options: &ReplyOptions) -> Result<Message> {
        self.ensure_idle()?;
        check_text(text)?;
        self.cancel_background(model);
        let mut session = self.session(session_id).await?;
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
        };
        session.messages.push(message.clone());
        session.updated_at = now;
        self.store.put_session(&session).await?;
        self.turn = Some(PendingTurn::new(session, character, options.clone(), Some(message.id.clone())));
        Ok(message)
    }

    /// Replace the latest reply with a new one (a swipe); then call [`Self::next_event`] until
    /// it returns `None`. While the greeting is the only reply, this shows the next of the card's
    /// greetings instead.
    pub async fn begin_regenerate<E: TextEmbedder, S: Store>(
        &mut self,
        model: &mut Generator,
        memory: &mut Memory<E, S>,
        session_id: &str,
        options: &ReplyOptions,
    ) -> Result<()> {
        self.ensure_idle()?;
        self.cancel_background(model);
        let mut session = self.session(session_id).await?;
        let character = self.character(&session.character_id).await?.character()?;
        match session.messages.last() {
            Some(last) if last.greeting => {
                let count = character.greetings().len().max(1);
                let message = self.set_greeting(session_id, (session.greeting_index + 1) % count).await?;
                let mut turn = PendingTurn::new(session, character, options.clone(), None);
                turn.started = true;
                turn.finished = true;
                turn.queue.push_back(TurnEvent::Text { text: message.text.clone(), opens: true });
                turn.queue.push_back(TurnEvent::Done { message: Some(message), usage: Usage::default(), timings: Timings::default(), finish_reason: "stop".into() });
                self.turn = Some(turn);
                return Ok(());
            }
            Some(last) if last.role == Speaker::Assistant => {
                let removed = session.messages.pop().map(|m| m.memory_ids).unwrap_or_default();
                memory.forget_many(&removed).await?;
                session.updated_at = self.now();
                self.store.put_session(&session).await?;
            }
            Some(_) => {} // the last message is the user's (a reply failed or was empty): answer it
            None => return Err(EngineError::BadRequest("the session has no messages to reply to".into())),
        }
        // A user message left without memories (its reply failed) gets them with this reply.
        let unremembered = session.messages.last().filter(|m| m.role == Speaker::User && m.memory_ids.is_empty()).map(|m| m.id.clone());
        self.turn = Some(PendingTurn::new(session, character, options.clone(), unremembered));
        Ok(())
    }


    fn prompt_input<'a>(
        &'a self,
        session: &'a Session,
        character: &'a Character,
        history: &'a [ChatMessage],
        summaries: &'a [HistorySummary],
        memories: &'a [MemoryItem],
    ) -> PromptInput<'a> {
        PromptInput {
            character,
            user_name: &session.user_name,
            history,
            summaries,
            memories,
            global_lorebooks: &self.settings.global_lorebooks,
            global_system_prompt: self.settings.global_system_prompt.as_deref(),
        }
    }

    /// Assemble the prompt of the turn under way (memories retrieved, lorebooks scanned) and
    /// start the model on it.
    async fn start_reply<E: TextEmbedder, S: Store>(&mut self, model: &mut Generator, memory: &mut Memory<E, S>) -> Result<()> {
        let Some(mut turn) = self.turn.take() else { return Ok(()) };
        let result = self.start_model(model, memory, &mut turn).await;
        // Back in place either way: a failed start ends the turn through `fail_turn`.
        self.turn = Some(turn);
        result
    }

    async fn start_model<E: TextEmbedder, S: Store>(&mut self, model: &mut Generator, memory: &mut Memory<E, S>, turn: &mut PendingTurn) -> Result<()> {
        let (session, character, options) = (&turn.session, &turn.character, &turn.options);

        let history: Vec<ChatMessage> = session.messages.iter().map(|m| ChatMessage::new(speaker_role(m.role), m.raw.clone())).collect();
        let summaries: Vec<HistorySummary> =
            session.latest_summary().map(|(i, s)| HistorySummary { start: 0, end: i + 1, text: s.text.clone() }).into_iter().collect();
        let mut prompt_options = self.settings.prompt.clone();
        prompt_options.context_tokens = prompt_options.context_tokens.min(model.context_length());
        prompt_options.reply_tokens = options.max_tokens.min(prompt_options.context_tokens / 2);
        let tokenizer = model.tokenizer();
        let counter = |text: &str| tokenizer.encode(text, false, false).map(|t| t.len()).unwrap_or(text.len().div_ceil(3));

        // Which messages the prompt shows anyway: their verbatim memories would only repeat them.
        let without_memories = assemble_prompt(&self.prompt_input(&session, &character, &history, &summaries, &[]), &prompt_options, &counter);
        let visible: HashSet<&str> = session.messages[without_memories.history_start.min(session.messages.len())..].iter().map(|m| m.id.as_str()).collect();
        let latest = session.messages.last().map(|m| m.id.as_str()).unwrap_or_default();
        let query = session.messages.iter().rev().find(|m| m.role == Speaker::User).map(|m| m.text.clone()).unwrap_or_default();
        let hits: Vec<SearchHit> = if query.trim().is_empty() {
            Vec::new()
        } else {
            memory
                .search(SearchQuery::new(&session.character_id, &query, self.settings.memories_searched))
                .await?
                .into_iter()
                .filter(|h| {
                    let sources = &h.record.source_message_ids;
                    // Nothing from the message being answered; no visible message twice.
                    !sources.iter().any(|s| s == latest) && !(h.record.kind == MemoryKind::Message && sources.iter().all(|s| visible.contains(s.as_str())) && !sources.is_empty())
                })
                .take(prompt_options.max_memories)
                .map(|mut h| {
                    h.record.embedding = Vec::new();
                    h
                })
                .collect()
        };
        let items: Vec<MemoryItem> = hits.iter().map(|h| MemoryItem { label: date_label(h.record.created_at), text: h.record.text.clone() }).collect();
        let assembled: AssembledPrompt = assemble_prompt(&self.prompt_input(&session, &character, &history, &summaries, &items), &prompt_options, &counter);
        if assembled.over_budget {
            return Err(EngineError::BadRequest(format!(
                "the character and the latest message need {} tokens, more than the {} the context leaves",
                assembled.total_tokens, assembled.budget
            )));
        }
        let messages: Vec<llm::ChatMessage> = assembled.messages.iter().map(|m| llm::ChatMessage::new(m.role.as_str(), m.content.clone())).collect();
        let rendered = model.template().render(&messages, true).map_err(llm::LlmError::from)?;
        let tokens = model.encode_chat(&messages)?;
        let hits: Vec<SearchHit> = hits.into_iter().take(assembled.memories_used).collect();
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
        turn.stops = vec![format!("\n{}:", session.user_name), format!("\n{char_name}:"), format!("{}:", session.user_name)];
        turn.own_label = format!("{char_name}:");
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
    pub fn abort(&mut self, model: &mut Generator) {
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
    pub async fn next_event<E: TextEmbedder, S: Store>(&mut self, model: &mut Generator, memory: &mut Memory<E, S>) -> Result<Option<TurnEvent>> {
        loop {
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
                }
                None => {
                    feed_parser(turn, true);
                    let result = self.finish_turn(model, memory).await;
                    if result.is_err() {
                        self.turn = None;
                    }
                    result?;
                }
            }
        }
    }

    /// The turn cannot go on: it ends with the user's message stored (and its memories written,
    /// if they can be) and no reply. Returns `error`.
    async fn fail_turn<E: TextEmbedder, S: Store>(&mut self, memory: &mut Memory<E, S>, error: EngineError) -> EngineError {
        if let Some(mut turn) = self.turn.take()
            && let Some(id) = turn.unremembered.take()
            && self.remember_stored(memory, &mut turn.session, &turn.character, &id).await.is_ok()
        {
            // Best effort: the turn's own error is the one to report.
            let _ = self.store.put_session(&turn.session).await;
        }
        error
    }

    /// Write the memories of message `id` of `session` and note their ids on it.
    async fn remember_stored<E: TextEmbedder, S: Store>(&self, memory: &mut Memory<E, S>, session: &mut Session, character: &Character, id: &str) -> Result<()> {
        let Some(index) = session.message_index(id) else { return Ok(()) };
        let ids = self.remember_message(memory, session, character, &session.messages[index]).await?;
        session.messages[index].memory_ids = ids;
        Ok(())
    }

    async fn finish_turn<E: TextEmbedder, S: Store>(&mut self, model: &mut Generator, memory: &mut Memory<E, S>) -> Result<()> {
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
        let usage = Usage { prompt_tokens: stats.prompt_tokens, cached_tokens: stats.prompt_tokens - stats.prefilled_tokens, completion_tokens: stats.completion_tokens };
        let timings = Timings {
            prefill_tok_s: stats.prefill_tok_s(),
            decode_tok_s: stats.decode_tok_s(),
            prefill_seconds: stats.prefill_seconds,
            decode_seconds: stats.decode_seconds,
        };
        let mut session = turn.session.clone();
        let character = turn.character.clone();
        let unremembered = turn.unremembered.take();
        let speech = reply.speech();
        let mut message = (!(speech.trim().is_empty() && reply.thought().trim().is_empty() && reply.action().trim().is_empty())).then(|| Message {
            id: new_id(),
            role: Speaker::Assistant,
            text: speech,
            thought: non_empty(reply.thought()),
            action: non_empty(reply.action()),
            raw: reply.to_text(true),
            created_at: now,
            greeting: false,
            memory_ids: Vec::new(),
        });
        if let Some(message) = &message {
            // Stored first, so a refused memory write cannot lose the reply.
            session.messages.push(message.clone());
            self.store.put_session(&session).await?;
        }
        // Then the memories: the user's message's (left until now, out of the reply's way), the reply's.
        if let Some(id) = &unremembered {
            self.remember_stored(memory, &mut session, &character, id).await?;
        }
        if let Some(message) = &mut message {
            self.remember_stored(memory, &mut session, &character, &message.id).await?;
            message.memory_ids = session.messages.last().map(|m| m.memory_ids.clone()).unwrap_or_default();
        }
        if unremembered.is_some() || message.is_some() {
            self.store.put_session(&session).await?;
        }
        if message.is_some() && self.wants_summary(&session) {
            self.summary_wanted.insert(session.id.clone());
        }
        if let Some(turn) = &mut self.turn {
            turn.queue.push_back(TurnEvent::Done { message, usage, timings, finish_reason });
        }
        Ok(())
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
