//! Prompt assembly under a token budget, in the model's own tokens.
//!
//! The output is a list of chat messages for the model's chat template, laid out so that the
//! long, stable part comes first and stays byte-identical from turn to turn — the engine's
//! generator keeps the longest token prefix already in its KV cache, so a new turn only
//! prefills what changed:
//!
//! ```text
//! system     system prompt · output format · constant lore (before char) · description ·
//!            personality · profile lines · scenario · what it knows about the user ·
//!            constant lore (after char) · examples
//! system     summary of the turns it covers (which are then never shown)
//! …          chat history, oldest kept first (thoughts stripped if the character says so)
//! system     keyword-triggered lore; its own notes; memories: pinned,  ← at `dynamic_depth` (1:
//!            then retrieved
//! user       latest message                                          before the last message)
//! system     post-history instructions
//! ```
//!
//! Lore entries "at depth" go into the history at their depth. Keyword-triggered entries that
//! are positioned before/after the character go into the late block by default
//! ([`LorePlacement::NearEnd`]): they change from turn to turn, and in the system message they
//! would invalidate the cache for everything after them. [`LorePlacement::InSystem`] puts them
//! at their spec position instead.
//!
//! Summaries always stand in for the messages they cover: the history shown starts where the
//! summaries (from the first message on, without gaps) end. When the prompt does not fit, things
//! go in this order: example blocks (last first), then the oldest history in steps of
//! `history_drop_step` messages (so the cut moves rarely and the cache stays valid in between),
//! with the given summaries of dropped turns standing in for them; then retrieved memories (last
//! first), then triggered lore (lowest rank first). The latest message and the pinned memories
//! (up to `pinned_memory_tokens`) are always kept.
//!
//! The memory block says what the character knows for certain — facts that outrank the card
//! and the model's guesses (PsyMem's explicit memory control) — each fact once. The prompt is small-model friendly: short, direct instructions; a
//! persona system message always comes first, so a template never falls back to the model's
//! built-in assistant persona.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::card::Character;
use crate::chat::{ChatMessage, Role, TokenCounter};
use crate::lore_scan::{LoreActivation, LorePosition, LoreScanOptions, LoreSource, Trigger, activate_lore, rank_key};
use crate::lorebook::Lorebook;
use crate::macros::MacroContext;
use crate::thoughts::strip_thoughts;

/// The system prompt when neither the card nor the caller gives one. Written for a 135M
/// model: few, short, direct sentences; the identity first, the no-assistant rule second.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are {{char}}. You are talking with {{user}}. \
Stay in character as {{char}} at all times. Never say you are an AI, a language model or an assistant. \
Write only {{char}}'s next reply, in a few short sentences.";

/// Added to the system prompt when the character's inner-thoughts option is on.
pub const THOUGHTS_INSTRUCTION: &str =
    "Write each reply like this: [{{char}}'s private thought] (what {{char}} does) what {{char}} says.";

/// Sent after the history when the card has no `post_history_instructions`; restating the
/// persona at the end is what keeps a small model in character.
pub const DEFAULT_POST_HISTORY: &str = "Reply as {{char}}. Stay in character and keep it short.";

/// The post-history reminder of the reply format, when inner thoughts are on. Said in words, not
/// as `[thought] (action) speech`: SmolLM2 copied that placeholder (`[thought]`, then nothing) in
/// every reply of `confidant eval`'s persona set; in words it writes real thoughts (EVAL.md).
pub const THOUGHTS_REMINDER: &str = "Write a short private thought of {{char}} in square brackets, then {{char}}'s words to {{user}}.";

/// A retrieved memory, as the memory store gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryItem {
    /// Short context for the model, e.g. a date ("2024-05-01") or a kind ("About Sam");
    /// may be empty.
    pub label: String,
    pub text: String,
    /// Always in the prompt (within [`PromptOptions::pinned_memory_tokens`]), before the
    /// retrieved ones and not counted in [`PromptOptions::max_memories`].
    #[serde(default)]
    pub pinned: bool,
}

impl MemoryItem {
    pub fn new(label: impl Into<String>, text: impl Into<String>) -> Self {
        Self { label: label.into(), text: text.into(), pinned: false }
    }

    pub fn pinned(label: impl Into<String>, text: impl Into<String>) -> Self {
        Self { pinned: true, ..Self::new(label, text) }
    }
}

/// The heading of the memory block.
pub const MEMORIES_HEADING: &str = "{{char}} knows these facts for certain (they are true even where the description above says otherwise):";

/// "- label: text", or "- text" without a label.
fn memory_line(m: &MemoryItem) -> String {
    if m.label.trim().is_empty() { format!("- {}", m.text.trim()) } else { format!("- {}: {}", m.label.trim(), m.text.trim()) }
}

/// A memory's text reduced for spotting the same fact twice: lower case, words only.
fn fact_key(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// The heading of the character's persona notes in the system message.
pub const PERSONA_NOTES_HEADING: &str = "{{char}}'s own notes on how things stand with {{user}}:";

/// The heading of the user's profile in the system message.
pub const USER_PROFILE_HEADING: &str = "{{char}} knows these facts about {{user}} for certain:";

/// A summary of history messages `start..end` (indices into the history given), used in
/// place of those messages once they no longer fit. A summary covering a wider range wins
/// over ones inside it (a rolling summary supersedes its earlier versions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySummary {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Where keyword-triggered before/after-character lore goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LorePlacement {
    /// In the late system block with the memories, keeping the system message cacheable.
    #[default]
    NearEnd,
    /// At its spec position in the system message.
    InSystem,
}

/// Budget and layout settings.
#[derive(Clone, Debug)]
pub struct PromptOptions {
    /// The model's context length.
    pub context_tokens: usize,
    /// Tokens kept free for the reply.
    pub reply_tokens: usize,
    /// What the chat template adds around each message (`<|im_start|>role\n…<|im_end|>\n` is
    /// about 5 tokens for ChatML), plus the generation prompt counted once as a message.
    pub message_overhead_tokens: usize,
    /// Lorebook scanning. A `token_budget` of `None` means the character book's, else a
    /// quarter of the prompt budget.
    pub lore: LoreScanOptions,
    pub lore_placement: LorePlacement,
    /// Oldest history is dropped this many messages at a time.
    pub history_drop_step: usize,
    /// How many messages from the end the late block (triggered lore, memories) goes.
    pub dynamic_depth: usize,
    /// At most this many retrieved memories are used (small models are swamped by more).
    pub max_memories: usize,
    /// Pinned memories go in, in order, while their texts fit in this many tokens; they are
    /// never dropped for space.
    pub pinned_memory_tokens: usize,
    /// Facts of the user's profile go in, in the order given, while their texts fit in this
    /// many tokens; never dropped for space.
    pub user_profile_tokens: usize,
}

impl Default for PromptOptions {
    fn default() -> Self {
        Self {
            context_tokens: 8192,
            reply_tokens: 256,
            message_overhead_tokens: 5,
            lore: LoreScanOptions::default(),
            lore_placement: LorePlacement::NearEnd,
            history_drop_step: 4,
            dynamic_depth: 1,
            max_memories: 3,
            pinned_memory_tokens: 200,
            user_profile_tokens: 150,
        }
    }
}

/// What goes into a prompt besides the options.
#[derive(Clone, Copy, Debug)]
pub struct PromptInput<'a> {
    pub character: &'a Character,
    pub user_name: &'a str,
    /// The whole chat, oldest first, ending with the message being replied to. Assistant
    /// messages may contain `[thoughts]`; they are stripped if the character's option says so.
    /// Macros are not replaced here: replace them in a greeting when the chat starts.
    pub history: &'a [ChatMessage],
    pub summaries: &'a [HistorySummary],
    /// Most relevant first.
    pub memories: &'a [MemoryItem],
    /// What the character knows about the user for certain (the shared user profile), most
    /// important first: in the system message, within [`PromptOptions::user_profile_tokens`].
    pub user_profile: &'a [MemoryItem],
    /// The character's own notes on how things stand (the latest few, oldest first), in the
    /// late block before the memories.
    pub persona_notes: &'a [String],
    pub global_lorebooks: &'a [Lorebook],
    /// Replaces [`DEFAULT_SYSTEM_PROMPT`] (a card's own `system_prompt` still wins, and its
    /// `{{original}}` then means this).
    pub global_system_prompt: Option<&'a str>,
}

/// What a section of the prompt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    SystemPrompt,
    OutputFormat,
    LoreBeforeChar,
    Description,
    Personality,
    Profile,
    PersonaNotes,
    Scenario,
    UserProfile,
    LoreAfterChar,
    Example,
    Summary,
    History,
    LoreAtDepth,
    Lore,
    Memories,
    PostHistory,
}

/// One labelled piece of the assembled prompt, for the debugging view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptSection {
    pub kind: SectionKind,
    /// E.g. "Description", "Lore: Lighthouse", "History 12 (user)".
    pub label: String,
    /// Index of the message it is part of.
    pub message: usize,
    pub text: String,
    /// Tokens of `text` alone.
    pub tokens: usize,
}

/// The assembled prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct AssembledPrompt {
    /// For the model's chat template, with the generation prompt added by the engine.
    pub messages: Vec<ChatMessage>,
    /// Every section in order; the messages are their texts joined with blank lines.
    pub sections: Vec<PromptSection>,
    /// Σ (tokens of each message's content + `message_overhead_tokens`), plus one overhead
    /// for the generation prompt.
    pub total_tokens: usize,
    /// `context_tokens - reply_tokens`.
    pub budget: usize,
    /// The first this many messages are carried over unchanged into the next turn's prompt
    /// (as long as nothing more is dropped): the engine's KV cache stays valid for them.
    pub stable_messages: usize,
    pub examples_kept: usize,
    pub examples_dropped: usize,
    /// Index into the history of the first message kept.
    pub history_start: usize,
    pub memories_used: usize,
    /// Which of the input's memories are in the prompt (indices, in prompt order: pinned
    /// first); a memory left out as a duplicate of another is not listed.
    pub memory_indices: Vec<usize>,
    /// Lore activation, after the assembler's own drops.
    pub lore: LoreActivation,
    /// Even the least that must go in (instructions, character, latest message) is over
    /// budget.
    pub over_budget: bool,
}

impl AssembledPrompt {
    /// A human-readable dump: every message, every section labelled with its token count.
    pub fn debug_view(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} tokens of {} (stable prefix: {} messages; examples {} kept, {} dropped; history from {}; {} memories; {} lore entries{})",
            self.total_tokens,
            self.budget,
            self.stable_messages,
            self.examples_kept,
            self.examples_dropped,
            self.history_start,
            self.memories_used,
            self.lore.entries.len(),
            if self.over_budget { "; OVER BUDGET" } else { "" }
        );
        for (i, m) in self.messages.iter().enumerate() {
            let _ = writeln!(out, "=== message {i}: {} ===", m.role.as_str());
            for s in self.sections.iter().filter(|s| s.message == i) {
                let _ = writeln!(out, "--- {} ({} tokens) ---\n{}", s.label, s.tokens, s.text);
            }
        }
        out
    }
}

/// Counts each distinct text once: assembly re-measures the same pieces while it drops.
struct MemoCounter<'a> {
    inner: &'a dyn TokenCounter,
    cache: RefCell<HashMap<String, usize>>,
}

impl MemoCounter<'_> {
    fn count(&self, text: &str) -> usize {
        if let Some(n) = self.cache.borrow().get(text) {
            return *n;
        }
        let n = self.inner.count(text);
        self.cache.borrow_mut().insert(text.to_owned(), n);
        n
    }
}

impl TokenCounter for MemoCounter<'_> {
    fn count(&self, text: &str) -> usize {
        MemoCounter::count(self, text)
    }
}

struct Piece {
    kind: SectionKind,
    label: String,
    text: String,
}

fn piece(kind: SectionKind, label: impl Into<String>, text: String) -> Piece {
    Piece { kind, label: label.into(), text }
}

struct Plan {
    role: Role,
    pieces: Vec<Piece>,
}

/// What is dropped, as counts.
#[derive(Clone, Copy)]
struct Cut {
    examples: usize,
    history_start: usize,
    memories: usize,
    lore: usize,
}

/// Assemble the prompt for the next reply.
pub fn assemble_prompt(input: &PromptInput, options: &PromptOptions, counter: &dyn TokenCounter) -> AssembledPrompt {
    let counter = MemoCounter { inner: counter, cache: RefCell::new(HashMap::new()) };
    let ch = input.character;
    let macros = MacroContext::new(ch.display_name(), input.user_name);
    let thoughts = ch.inner_thoughts();
    let budget = options.context_tokens.saturating_sub(options.reply_tokens);

    // The history as the model sees it.
    let history: Vec<ChatMessage> = input
        .history
        .iter()
        .map(|m| {
            if m.role == Role::Assistant && thoughts.enabled && thoughts.strip_from_history {
                ChatMessage::new(m.role, strip_thoughts(&m.content))
            } else {
                m.clone()
            }
        })
        .collect();

    // Lore.
    let mut books: Vec<(LoreSource, &Lorebook)> = Vec::new();
    if let Some(book) = &ch.character_book {
        books.push((LoreSource::Character, book));
    }
    books.extend(input.global_lorebooks.iter().enumerate().map(|(i, b)| (LoreSource::Global(i), b)));
    let mut lore_options = options.lore.clone();
    let book_budget = ch.character_book.as_ref().and_then(|b| b.token_budget).and_then(|b| usize::try_from(b).ok());
    lore_options.token_budget = lore_options.token_budget.or(book_budget).or(Some(budget / 4));
    let scanned: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    let mut lore = activate_lore(&books, &scanned, &lore_options, &macros, &counter);

    // The fixed character part.
    let default_system = input.global_system_prompt.unwrap_or(DEFAULT_SYSTEM_PROMPT);
    let default_system = macros.apply(default_system);
    let system_prompt = if ch.system_prompt.trim().is_empty() {
        default_system.clone()
    } else {
        let applied = macros.with_original(&default_system).apply(&ch.system_prompt);
        if applied.trim().is_empty() { default_system.clone() } else { applied }
    };
    let default_post = macros.apply(DEFAULT_POST_HISTORY);
    let mut post_history = if ch.post_history_instructions.trim().is_empty() {
        default_post.clone()
    } else {
        macros.with_original(&default_post).apply(&ch.post_history_instructions)
    };
    if thoughts.enabled {
        post_history = format!("{}\n{}", post_history.trim_end(), macros.apply(THOUGHTS_REMINDER));
    }
    let examples: Vec<String> =
        ch.example_blocks().iter().map(|b| format!("Example conversation:\n{}", macros.apply(b))).collect();
    let profile_lines: Vec<String> = ch.profile().map(|p| p.render_lines()).unwrap_or_default().iter().map(|l| macros.apply(l)).collect();

    // The user's profile: in order while it fits its budget; each fact once, and never again
    // among the memories.
    let mut seen_facts = std::collections::HashSet::new();
    let mut user_profile_tokens = 0;
    let mut user_profile_lines: Vec<String> = Vec::new();
    for fact in input.user_profile {
        let line = memory_line(fact);
        let tokens = counter.count(&line);
        if fact.text.trim().is_empty() || user_profile_tokens + tokens > options.user_profile_tokens || !seen_facts.insert(fact_key(&fact.text)) {
            continue;
        }
        user_profile_tokens += tokens;
        user_profile_lines.push(line);
    }

    // Pinned memories first (while they fit their budget), then retrieved ones; each fact once.
    let mut pinned_tokens = 0;
    let mut memory_order: Vec<usize> = Vec::new();
    for (i, m) in input.memories.iter().enumerate().filter(|(_, m)| m.pinned) {
        let tokens = counter.count(m.text.trim());
        if m.text.trim().is_empty() || pinned_tokens + tokens > options.pinned_memory_tokens || !seen_facts.insert(fact_key(&m.text)) {
            continue;
        }
        pinned_tokens += tokens;
        memory_order.push(i);
    }
    let pinned_count = memory_order.len();
    let retrieved: Vec<usize> = input
        .memories
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.pinned && !m.text.trim().is_empty() && seen_facts.insert(fact_key(&m.text)))
        .map(|(i, _)| i)
        .take(options.max_memories)
        .collect();
    memory_order.extend(retrieved);
    let memories: Vec<&MemoryItem> = memory_order.iter().map(|&i| &input.memories[i]).collect();
    // Only retrieved memories can be dropped for space.
    let droppable_memories = memories.len() - pinned_count;

    // Triggered entries in rank order, for dropping.
    let triggered_rank = |lore: &LoreActivation| -> Vec<usize> {
        let mut idx: Vec<usize> =
            (0..lore.entries.len()).filter(|&i| lore.entries[i].trigger != Trigger::Constant).collect();
        idx.sort_by_key(|&i| rank_key(&lore.entries[i]));
        idx
    };
    let droppable_lore = triggered_rank(&lore).len();

    let build = |cut: &Cut, lore: &LoreActivation| -> (Vec<Plan>, usize) {
        let mut system = Vec::new();
        system.push(piece(SectionKind::SystemPrompt, "System prompt", system_prompt.clone()));
        if thoughts.enabled {
            system.push(piece(SectionKind::OutputFormat, "Output format", macros.apply(THOUGHTS_INSTRUCTION)));
        }
        // Lore to leave out: the lowest-ranked triggered entries, `cut.lore` of them.
        let ranked = triggered_rank(lore);
        let left_out: Vec<usize> = ranked.iter().rev().take(cut.lore).copied().collect();
        let kept_lore = lore.entries.iter().enumerate().filter(|(i, _)| !left_out.contains(i)).map(|(_, e)| e);
        let mut late_lore = Vec::new();
        let mut depth_lore: Vec<(usize, Role, Piece)> = Vec::new();
        let mut before = Vec::new();
        let mut after = Vec::new();
        for e in kept_lore {
            let p = piece(SectionKind::Lore, format!("Lore: {}", e.label), e.content.clone());
            let in_system = e.trigger == Trigger::Constant || options.lore_placement == LorePlacement::InSystem;
            match e.position {
                LorePosition::AtDepth { depth, role } => {
                    depth_lore.push((depth, role, Piece { kind: SectionKind::LoreAtDepth, ..p }))
                }
                LorePosition::BeforeChar if in_system => before.push(Piece { kind: SectionKind::LoreBeforeChar, ..p }),
                LorePosition::AfterChar if in_system => after.push(Piece { kind: SectionKind::LoreAfterChar, ..p }),
                _ => late_lore.push(p),
            }
        }
        system.extend(before);
        let trimmed = |s: &str| macros.apply(s.trim());
        if !ch.description.trim().is_empty() {
            system.push(piece(SectionKind::Description, "Description", trimmed(&ch.description)));
        }
        if !ch.personality.trim().is_empty() {
            system.push(piece(
                SectionKind::Personality,
                "Personality",
                format!("{}'s personality: {}", macros.char_name, trimmed(&ch.personality)),
            ));
        }
        if !profile_lines.is_empty() {
            let lines: Vec<String> = profile_lines.iter().map(|l| format!("- {l}")).collect();
            system.push(piece(
                SectionKind::Profile,
                "Profile",
                format!("{}'s nature:\n{}", macros.char_name, lines.join("\n")),
            ));
        }
        if !ch.scenario.trim().is_empty() {
            system.push(piece(SectionKind::Scenario, "Scenario", format!("Scenario: {}", trimmed(&ch.scenario))));
        }
        if !user_profile_lines.is_empty() {
            system.push(piece(
                SectionKind::UserProfile,
                "User profile",
                format!("{}\n{}", macros.apply(USER_PROFILE_HEADING), user_profile_lines.join("\n")),
            ));
        }
        system.extend(after);
        let kept_examples = examples.len() - cut.examples;
        for (i, e) in examples.iter().take(kept_examples).enumerate() {
            system.push(piece(SectionKind::Example, format!("Example {}", i + 1), e.clone()));
        }
        let mut plans = vec![Plan { role: Role::System, pieces: system }];

        // Summaries standing in for dropped turns.
        let s = cut.history_start;
        let covering: Vec<&HistorySummary> =
            input.summaries.iter().filter(|x| x.start < x.end && x.end <= s && !x.text.trim().is_empty()).collect();
        let mut chosen: Vec<&HistorySummary> = covering
            .iter()
            .enumerate()
            .filter(|(i, x)| {
                !covering.iter().enumerate().any(|(j, y)| {
                    j != *i && y.start <= x.start && x.end <= y.end && (y.start < x.start || x.end < y.end || j < *i)
                })
            })
            .map(|(_, x)| *x)
            .collect();
        chosen.sort_by_key(|x| (x.start, x.end));
        if !chosen.is_empty() {
            let text = chosen.iter().map(|x| x.text.trim()).collect::<Vec<_>>().join("\n");
            plans.push(Plan {
                role: Role::System,
                pieces: vec![piece(
                    SectionKind::Summary,
                    "Summary of dropped turns",
                    format!("Earlier in this conversation: {text}"),
                )],
            });
        }

        // History with injections.
        let kept = &history[s.min(history.len())..];
        let mut injections: Vec<(usize, Role, Vec<Piece>)> = Vec::new();
        let inject = |depth: usize, role: Role, p: Piece, injections: &mut Vec<(usize, Role, Vec<Piece>)>| {
            let depth = depth.min(kept.len());
            match injections.iter_mut().find(|(d, r, _)| *d == depth && *r == role) {
                Some((_, _, ps)) => ps.push(p),
                None => injections.push((depth, role, vec![p])),
            }
        };
        for (depth, role, p) in depth_lore {
            inject(depth, role, p, &mut injections);
        }
        for p in late_lore {
            inject(options.dynamic_depth, Role::System, p, &mut injections);
        }
        // The character's own notes change after each summary: in the late block, so the
        // system message (and the cache of it read back after a summary) stays as it was.
        let notes: Vec<String> = input.persona_notes.iter().filter(|n| !n.trim().is_empty()).map(|n| format!("- {}", n.trim())).collect();
        if !notes.is_empty() {
            let text = format!("{}\n{}", macros.apply(PERSONA_NOTES_HEADING), notes.join("\n"));
            inject(options.dynamic_depth, Role::System, piece(SectionKind::PersonaNotes, "Persona notes", text), &mut injections);
        }
        let used_memories = memories.len() - cut.memories;
        if used_memories > 0 {
            let lines: Vec<String> = memories[..used_memories].iter().map(|m| memory_line(m)).collect();
            let text = format!("{}\n{}", macros.apply(MEMORIES_HEADING), lines.join("\n"));
            inject(
                options.dynamic_depth,
                Role::System,
                piece(SectionKind::Memories, "Memories", text),
                &mut injections,
            );
        }
        // Deeper first; at one depth, system before user before assistant.
        injections.sort_by_key(|(d, r, _)| (std::cmp::Reverse(*d), *r as u8));
        let mut first_injection = None;
        for (i, m) in kept.iter().enumerate() {
            let depth_here = kept.len() - i;
            for (_, r, ps) in injections.iter_mut().filter(|(d, _, _)| *d == depth_here) {
                first_injection.get_or_insert(plans.len());
                plans.push(Plan { role: *r, pieces: std::mem::take(ps) });
            }
            plans.push(Plan {
                role: m.role,
                pieces: vec![piece(
                    SectionKind::History,
                    format!("History {} ({})", s + i, m.role.as_str()),
                    m.content.clone(),
                )],
            });
        }
        for (_, r, ps) in injections.iter_mut().filter(|(d, _, ps)| *d == 0 && !ps.is_empty()) {
            first_injection.get_or_insert(plans.len());
            plans.push(Plan { role: *r, pieces: std::mem::take(ps) });
        }
        let stable = first_injection.unwrap_or(plans.len());
        plans.push(Plan {
            role: Role::System,
            pieces: vec![piece(SectionKind::PostHistory, "Post-history instructions", post_history.clone())],
        });
        (plans, stable)
    };

    let measure = |plans: &[Plan]| -> usize {
        plans.iter().map(|p| counter.count(&join_pieces(&p.pieces)) + options.message_overhead_tokens).sum::<usize>()
            + options.message_overhead_tokens
    };

    // Drop until it fits, in the documented order, never showing what a summary covers.
    let n = history.len();
    let step = options.history_drop_step.max(1);
    let summarized = summarized_prefix(input.summaries, n.saturating_sub(1));
    let mut cut = Cut { examples: 0, history_start: summarized, memories: 0, lore: 0 };
    let mut over_budget = false;
    loop {
        let (plans, _) = build(&cut, &lore);
        let total = measure(&plans);
        if total <= budget {
            break;
        }
        if cut.examples < examples.len() {
            cut.examples += 1;
        } else if n > 0 && cut.history_start < n - 1 {
            // Jump as many steps as the overshoot needs at once (a long chat would otherwise
            // rebuild the prompt once per step); the next pass re-measures, summaries included.
            let over = total - budget;
            let mut freed = 0;
            while freed < over && cut.history_start < n - 1 {
                let next = (cut.history_start + step).min(n - 1);
                freed += history[cut.history_start..next]
                    .iter()
                    .map(|m| counter.count(&m.content) + options.message_overhead_tokens)
                    .sum::<usize>();
                cut.history_start = next;
            }
        } else if cut.memories < droppable_memories {
            cut.memories += 1;
        } else if cut.lore < droppable_lore {
            cut.lore += 1;
        } else {
            over_budget = true;
            break;
        }
    }

    // Record lore that was dropped for space in the activation report.
    if cut.lore > 0 {
        let ranked = triggered_rank(&lore);
        let mut left_out: Vec<usize> = ranked.iter().rev().take(cut.lore).copied().collect();
        left_out.sort_unstable_by(|a, b| b.cmp(a));
        for i in left_out {
            let e = lore.entries.remove(i);
            lore.tokens = lore.tokens.saturating_sub(e.tokens);
            lore.dropped.push(e);
        }
        cut.lore = 0;
    }
    let (plans, stable_messages) = build(&cut, &lore);
    let total_tokens = measure(&plans);

    let mut messages = Vec::with_capacity(plans.len());
    let mut sections = Vec::new();
    for (i, plan) in plans.into_iter().enumerate() {
        messages.push(ChatMessage::new(plan.role, join_pieces(&plan.pieces)));
        for p in plan.pieces {
            let tokens = counter.count(&p.text);
            sections.push(PromptSection { kind: p.kind, label: p.label, message: i, text: p.text, tokens });
        }
    }
    AssembledPrompt {
        messages,
        sections,
        total_tokens,
        budget,
        stable_messages,
        examples_kept: examples.len() - cut.examples,
        examples_dropped: cut.examples,
        history_start: cut.history_start,
        memories_used: memories.len() - cut.memories,
        memory_indices: memory_order[..memories.len() - cut.memories].to_vec(),
        lore,
        over_budget,
    }
}

/// How many of the first messages the summaries cover together, without gaps, up to `limit`
/// (summaries reaching past it are left out: the latest message is always shown).
fn summarized_prefix(summaries: &[HistorySummary], limit: usize) -> usize {
    let mut usable: Vec<&HistorySummary> =
        summaries.iter().filter(|x| x.start < x.end && x.end <= limit && !x.text.trim().is_empty()).collect();
    usable.sort_by_key(|x| x.start);
    let mut covered = 0;
    for x in usable {
        if x.start > covered {
            break;
        }
        covered = covered.max(x.end);
    }
    covered
}

fn join_pieces(pieces: &[Piece]) -> String {
    pieces.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n\n")
}
