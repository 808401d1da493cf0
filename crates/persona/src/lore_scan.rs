//! Which lorebook entries go into the prompt, following the V2/V3 specs and SillyTavern:
//!
//! 1. An entry is a candidate when `enabled`. It activates when it is `constant` (or has the V3
//!    `@@activate` decorator), or when one of its keys (plus `@@additional_keys`) is found in
//!    the last `scan_depth` messages; then, if `selective` and it has secondary keys, the
//!    secondary keys must agree too: SillyTavern's `extensions.selectiveLogic` 0 = AND ANY
//!    (default, the spec's rule), 1 = NOT ALL, 2 = NOT ANY, 3 = AND ALL. `@@exclude_keys`
//!    and `@@dont_activate` veto it.
//! 2. Keys are plain text, matched case-insensitively unless the entry (or the options) says
//!    `case_sensitive`; with `match_whole_words` a one-word key only matches as a whole word
//!    (a key with spaces matches as a substring, as SillyTavern does). A key written
//!    `/pattern/flags` is a regular expression (flags `i`, `m`, `s` honoured; `g`, `u`, `y`
//!    ignored), and so is every key of an entry with V3 `use_regex`. Patterns are compiled
//!    by the `regex` crate (linear-time, size-limited); one that does not compile (JavaScript
//!    look-arounds, say) never matches and is reported in `warnings`.
//! 3. Recursive scanning (the book's `recursive_scanning`, or the options' override): the
//!    content of activated entries is scanned as well, pass after pass, at most
//!    `max_recursion` passes. Entries with `extensions.exclude_recursion` are only activated by
//!    the chat; the content of entries with `extensions.prevent_recursion` does not recurse.
//! 4. Each entry is inserted once. Over the token budget, entries are kept in rank order —
//!    higher `priority` first (an entry without one ranks by its `insertion_order`), then the
//!    character's own book before global books, then higher `insertion_order` — and an
//!    entry that does not fit is dropped, so the lowest-ranked go first.
//! 5. The kept entries come out in `insertion_order` (lower first), each with its position:
//!    before or after the character definitions, or at a depth in the chat history
//!    (SillyTavern's `extensions.position` 4 with `extensions.depth` and `extensions.role`, or
//!    the V3 `@@depth`/`@@role` decorators). SillyTavern's author's-note and example-message
//!    positions (2, 3, 5, 6) have no counterpart here and count as after the character.
//!
//! Bounded for hostile books (see [`crate::limits`]): one copy of the latest
//! [`MAX_LORE_CHAT_BYTES`] of the chat serves every scan depth; the content kept from all
//! entries (after macros) stops at [`MAX_LORE_TEXT_BYTES`]; regex keys are compiled with
//! growing size limits charged to [`MAX_REGEX_TOTAL_BYTES`]; and key matching stops at
//! [`MAX_LORE_SCAN_WORK`] bytes examined. Each cut adds a warning.
//!
//! Not done: probability (`useProbability`), inclusion groups, timed effects (sticky,
//! cooldown, delay), `@@activate_only_after`/`@@activate_only_every` and the other V3
//! decorators: they need state across turns or randomness, and the turn is deterministic.

use std::cell::Cell;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::chat::{Role, TokenCounter};
use crate::limits::{
    MAX_LORE_CHAT_BYTES, MAX_LORE_RECURSION, MAX_LORE_SCAN_WORK, MAX_LORE_TEXT_BYTES, MAX_RECURSION_BUFFER_BYTES,
    MAX_REGEX_COMPILED_BYTES, MAX_REGEX_KEYS_PER_SCAN, MAX_REGEX_PATTERN_BYTES, MAX_REGEX_TOTAL_BYTES, REGEX_WORK_FACTOR,
};
use crate::lorebook::{LoreEntry, Lorebook};
use crate::macros::MacroContext;

/// Where a lorebook came from. The character's own book outranks global ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoreSource {
    Character,
    /// Index into the global books given.
    Global(usize),
}

/// Where an activated entry goes in the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LorePosition {
    BeforeChar,
    AfterChar,
    /// Inserted into the chat history this many messages from its end (0 = after the last).
    AtDepth {
        depth: usize,
        role: Role,
    },
}

/// Scanning settings; a book's own `scan_depth`, `token_budget` and `recursive_scanning`
/// apply where set (the character's book's for the budget).
#[derive(Clone, Debug)]
pub struct LoreScanOptions {
    /// Messages scanned when neither the entry nor its book says (SillyTavern's default is 2).
    pub scan_depth: usize,
    /// Tokens for all entries together. `None`: the character book's `token_budget`, else no
    /// limit.
    pub token_budget: Option<usize>,
    /// Overrides every book's `recursive_scanning`.
    pub recursive: Option<bool>,
    /// Recursion passes (capped at 10).
    pub max_recursion: usize,
    /// Default for entries that do not say.
    pub case_sensitive: bool,
    /// Default for entries that do not say (SillyTavern's default is off).
    pub match_whole_words: bool,
}

impl Default for LoreScanOptions {
    fn default() -> Self {
        Self {
            scan_depth: 2,
            token_budget: None,
            recursive: None,
            max_recursion: 3,
            case_sensitive: false,
            match_whole_words: false,
        }
    }
}

/// Why an entry activated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    Constant,
    /// A key found in the chat.
    Key(String),
    /// A key found in another activated entry's content, in this recursion pass (1-based).
    Recursion {
        key: String,
        pass: usize,
    },
}

/// An activated entry, ready to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivatedLore {
    pub source: LoreSource,
    /// Index in its book's `entries`.
    pub entry: usize,
    pub label: String,
    /// The content with V3 decorators removed and macros replaced.
    pub content: String,
    pub position: LorePosition,
    pub insertion_order: i64,
    /// The rank used against the budget: `priority`, else `insertion_order`.
    pub priority: i64,
    pub tokens: usize,
    pub trigger: Trigger,
}

/// The outcome of a scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoreActivation {
    /// Kept entries in insertion order.
    pub entries: Vec<ActivatedLore>,
    /// Activated, but over the token budget.
    pub dropped: Vec<ActivatedLore>,
    pub tokens: usize,
    /// Keys that could not be used (bad regex patterns).
    pub warnings: Vec<String>,
}

impl LoreActivation {
    pub fn at(&self, position: LorePosition) -> impl Iterator<Item = &ActivatedLore> {
        self.entries.iter().filter(move |e| e.position == position)
    }
}

/// Scan `messages` (oldest first; only the last few are looked at) against the books.
pub fn activate_lore(
    books: &[(LoreSource, &Lorebook)],
    messages: &[&str],
    options: &LoreScanOptions,
    macros: &MacroContext,
    counter: &dyn TokenCounter,
) -> LoreActivation {
    let mut diagnostics = Diagnostics {
        warnings: Vec::new(),
        regex_budget: MAX_REGEX_KEYS_PER_SCAN,
        regex_bytes: MAX_REGEX_TOTAL_BYTES,
        text_budget: MAX_LORE_TEXT_BYTES,
        over_text_budget: 0,
    };
    let mut compiled = Vec::new();
    for (source, book) in books {
        let recursive = options.recursive.or(book.recursive_scanning).unwrap_or(false);
        let book_depth = book.scan_depth.and_then(|d| usize::try_from(d).ok()).unwrap_or(options.scan_depth);
        for (index, entry) in book.entries.iter().enumerate() {
            if entry.enabled
                && let Some(entry) =
                    CompiledEntry::new(*source, index, entry, book_depth, recursive, options, macros, &mut diagnostics)
            {
                compiled.push(entry);
            }
        }
    }

    if diagnostics.over_text_budget > 0 {
        diagnostics.warnings.push(format!(
            "{} lorebook entries ignored: the books hold more than {MAX_LORE_TEXT_BYTES} bytes of content",
            diagnostics.over_text_budget
        ));
    }

    // One copy of the latest messages serves every scan depth: each depth's text is a suffix.
    let deepest = compiled.iter().map(|e| e.scan_depth).max().unwrap_or(0);
    let chat = ChatText::new(messages, deepest);
    let work = Work { left: Cell::new(MAX_LORE_SCAN_WORK), exhausted: Cell::new(false) };
    let mut activated: Vec<(usize, Trigger)> = Vec::new();
    let mut is_active = vec![false; compiled.len()];

    // Pass 0: the chat itself.
    for (i, entry) in compiled.iter().enumerate() {
        if entry.never {
            continue;
        }
        let trigger = if entry.always {
            Some(Trigger::Constant)
        } else {
            entry.matches(&[chat.hay(entry.scan_depth)], &work).map(Trigger::Key)
        };
        if let Some(t) = trigger {
            is_active[i] = true;
            activated.push((i, t));
        }
    }

    // Recursion passes: newly activated content may activate more.
    let passes = options.max_recursion.min(MAX_LORE_RECURSION);
    let mut buffer_text = String::new();
    let mut fed = 0;
    for pass in 1..=passes {
        for (i, _) in &activated[fed..] {
            let body = &compiled[*i].body;
            // Bounded, so that a hostile book cannot make every pass scan megabytes.
            if !compiled[*i].prevent_recursion && buffer_text.len() + body.len() < MAX_RECURSION_BUFFER_BYTES {
                buffer_text.push('\n');
                buffer_text.push_str(body);
            }
        }
        fed = activated.len();
        if buffer_text.is_empty() {
            break;
        }
        let buffer_lower = buffer_text.to_lowercase();
        let buffer = Haystack { raw: &buffer_text, lower: &buffer_lower };
        let mut new = Vec::new();
        for (i, entry) in compiled.iter().enumerate() {
            if is_active[i] || entry.never || !entry.recursive || entry.exclude_recursion {
                continue;
            }
            if let Some(key) = entry.matches(&[chat.hay(entry.scan_depth), buffer], &work) {
                new.push((i, Trigger::Recursion { key, pass }));
            }
        }
        if new.is_empty() {
            break;
        }
        for (i, t) in new {
            is_active[i] = true;
            activated.push((i, t));
        }
    }

    // Budget: keep in rank order, drop what does not fit.
    let character_budget = books
        .iter()
        .find(|(s, _)| *s == LoreSource::Character)
        .and_then(|(_, b)| b.token_budget)
        .and_then(|b| usize::try_from(b).ok());
    let budget = options.token_budget.or(character_budget).unwrap_or(usize::MAX);
    let mut candidates: Vec<ActivatedLore> = activated
        .into_iter()
        .map(|(i, trigger)| {
            let e = &compiled[i];
            ActivatedLore {
                priority: e.entry.priority.unwrap_or(e.entry.insertion_order),
                source: e.source,
                entry: e.index,
                label: e.entry.label(),
                content: e.body.clone(),
                position: e.position,
                insertion_order: e.entry.insertion_order,
                tokens: counter.count(&e.body),
                trigger,
            }
        })
        .collect();
    candidates.sort_by_key(rank_key);
    let mut used = 0usize;
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for c in candidates {
        if used.saturating_add(c.tokens) <= budget {
            used += c.tokens;
            kept.push(c);
        } else {
            dropped.push(c);
        }
    }
    kept.sort_by_key(|a| (a.insertion_order, a.source, a.entry));
    let mut warnings = diagnostics.warnings;
    if work.exhausted.get() {
        warnings.push(format!(
            "the lorebook scan reached its work limit ({MAX_LORE_SCAN_WORK} bytes examined); the remaining keys were not checked"
        ));
    }
    LoreActivation { entries: kept, dropped, tokens: used, warnings }
}

/// Sort key: the entry to keep first sorts first.
pub(crate) fn rank_key(a: &ActivatedLore) -> (std::cmp::Reverse<i64>, LoreSource, std::cmp::Reverse<i64>, usize) {
    (std::cmp::Reverse(a.priority), a.source, std::cmp::Reverse(a.insertion_order), a.entry)
}

/// Text to scan, with a lowercase copy for case-insensitive plain keys.
#[derive(Clone, Copy)]
struct Haystack<'a> {
    raw: &'a str,
    lower: &'a str,
}

/// The latest messages joined by newlines (at most [`MAX_LORE_CHAT_BYTES`] of them, the
/// oldest one cut at its start if need be), with where each message starts, so that the
/// text of the last `depth` messages is a suffix.
struct ChatText {
    raw: String,
    lower: String,
    /// Per message kept, oldest first: its start in `raw` and in `lower`.
    starts: Vec<(usize, usize)>,
}

impl ChatText {
    fn new(messages: &[&str], depth: usize) -> Self {
        let recent = &messages[messages.len() - depth.min(messages.len())..];
        // The newest messages that fit, and how much of the one before them.
        let mut kept = 0;
        let mut bytes = 0usize;
        for message in recent.iter().rev() {
            if bytes + message.len() > MAX_LORE_CHAT_BYTES {
                break;
            }
            bytes += message.len() + 1;
            kept += 1;
        }
        let mut parts: Vec<&str> = recent[recent.len() - kept..].to_vec();
        if kept < recent.len() && bytes < MAX_LORE_CHAT_BYTES {
            let cut = recent[recent.len() - kept - 1];
            let mut at = cut.len() - (MAX_LORE_CHAT_BYTES - bytes).min(cut.len());
            while !cut.is_char_boundary(at) {
                at += 1;
            }
            parts.insert(0, &cut[at..]);
        }
        let (mut raw, mut lower) = (String::with_capacity(bytes), String::with_capacity(bytes));
        let mut starts = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                raw.push('\n');
                lower.push('\n');
            }
            starts.push((raw.len(), lower.len()));
            raw.push_str(part);
            lower.push_str(&part.to_lowercase());
        }
        Self { raw, lower, starts }
    }

    /// The last `depth` messages.
    fn hay(&self, depth: usize) -> Haystack<'_> {
        let (raw, lower) = match depth {
            0 => (self.raw.len(), self.lower.len()),
            d => self.starts.get(self.starts.len().saturating_sub(d)).copied().unwrap_or((0, 0)),
        };
        Haystack { raw: &self.raw[raw..], lower: &self.lower[lower..] }
    }
}

/// What is left of a scan's work budget ([`MAX_LORE_SCAN_WORK`]).
struct Work {
    left: Cell<u64>,
    exhausted: Cell<bool>,
}

impl Work {
    /// Takes `cost` from the budget; false (and the scan marked as cut short) when it is spent.
    fn spend(&self, cost: u64) -> bool {
        match self.left.get().checked_sub(cost) {
            Some(left) => {
                self.left.set(left);
                true
            }
            None => {
                self.left.set(0);
                self.exhausted.set(true);
                false
            }
        }
    }
}

enum KeyMatcher {
    Plain { text: String, needle: String, case_sensitive: bool, whole_word: bool },
    /// `cost_per_byte`: work charged per byte examined (see [`MAX_LORE_SCAN_WORK`]).
    Regex { text: String, regex: Regex, cost_per_byte: u64 },
}

impl KeyMatcher {
    fn text(&self) -> &str {
        match self {
            KeyMatcher::Plain { text, .. } | KeyMatcher::Regex { text, .. } => text,
        }
    }

    fn is_match(&self, hay: &Haystack, work: &Work) -> bool {
        match self {
            KeyMatcher::Regex { regex, cost_per_byte, .. } => {
                work.spend((hay.raw.len() as u64).saturating_mul(*cost_per_byte)) && regex.is_match(hay.raw)
            }
            KeyMatcher::Plain { needle, case_sensitive, whole_word, .. } => {
                if !work.spend(hay.raw.len() as u64) {
                    return false;
                }
                let h = if *case_sensitive { hay.raw } else { hay.lower };
                if !*whole_word || needle.chars().any(char::is_whitespace) {
                    return h.contains(needle.as_str());
                }
                h.match_indices(needle.as_str()).any(|(at, m)| {
                    let before = h[..at].chars().next_back();
                    let after = h[at + m.len()..].chars().next();
                    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
                })
            }
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[derive(Clone, Copy)]
enum SelectiveLogic {
    AndAny,
    NotAll,
    NotAny,
    AndAll,
}

struct CompiledEntry<'a> {
    source: LoreSource,
    index: usize,
    entry: &'a LoreEntry,
    primary: Vec<KeyMatcher>,
    secondary: Vec<KeyMatcher>,
    exclude: Vec<KeyMatcher>,
    logic: SelectiveLogic,
    scan_depth: usize,
    always: bool,
    never: bool,
    recursive: bool,
    exclude_recursion: bool,
    prevent_recursion: bool,
    position: LorePosition,
    body: String,
}

impl<'a> CompiledEntry<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        source: LoreSource,
        index: usize,
        entry: &'a LoreEntry,
        book_depth: usize,
        recursive: bool,
        options: &LoreScanOptions,
        macros: &MacroContext,
        diagnostics: &mut Diagnostics,
    ) -> Option<Self> {
        let ext = &entry.extensions;
        let (decorators, body) = parse_decorators(&entry.content);
        let label = entry.label();
        // The scan keeps every entry's content: bounded in total. Past the bound, no entry is
        // expanded any more (an expansion may add up to MAX_MACRO_GROWTH_BYTES).
        let body = body.trim();
        let body = (body.len() <= diagnostics.text_budget)
            .then(|| macros.apply(body))
            .filter(|expanded| expanded.len() <= diagnostics.text_budget);
        let Some(body) = body else {
            diagnostics.text_budget = 0;
            diagnostics.over_text_budget += 1;
            return None;
        };
        diagnostics.text_budget -= body.len();
        let case_sensitive = entry
            .case_sensitive
            .or_else(|| ext.get("case_sensitive").and_then(Value::as_bool))
            .unwrap_or(options.case_sensitive);
        let whole_word = ext.get("match_whole_words").and_then(Value::as_bool).unwrap_or(options.match_whole_words);
        let use_regex = entry.use_regex.unwrap_or(false);
        let mut compile = |keys: &mut dyn Iterator<Item = &String>| -> Vec<KeyMatcher> {
            keys.filter_map(|k| compile_key(k, use_regex, case_sensitive, whole_word, &label, diagnostics)).collect()
        };
        let primary = compile(&mut entry.keys.iter().chain(decorators.additional_keys.iter()));
        let secondary = compile(&mut entry.secondary_keys.iter().flatten());
        let exclude = compile(&mut decorators.exclude_keys.iter());
        let logic = match ext.get("selectiveLogic").and_then(Value::as_i64) {
            Some(1) => SelectiveLogic::NotAll,
            Some(2) => SelectiveLogic::NotAny,
            Some(3) => SelectiveLogic::AndAll,
            _ => SelectiveLogic::AndAny,
        };
        // An entry's own scan depth (SillyTavern extension or decorator) beats its book's.
        let scan_depth = decorators
            .scan_depth
            .or_else(|| ext.get("scan_depth").and_then(Value::as_u64).and_then(|d| usize::try_from(d).ok()))
            .unwrap_or(book_depth);
        let role_from_number = |n: Option<i64>| match n {
            Some(1) => Role::User,
            Some(2) => Role::Assistant,
            _ => Role::System,
        };
        let position = if let Some(depth) = decorators.depth {
            LorePosition::AtDepth { depth, role: decorators.role.unwrap_or(Role::System) }
        } else {
            match ext.get("position").and_then(Value::as_i64) {
                Some(0) => LorePosition::BeforeChar,
                Some(4) => LorePosition::AtDepth {
                    depth: ext.get("depth").and_then(Value::as_u64).and_then(|d| usize::try_from(d).ok()).unwrap_or(4),
                    role: decorators.role.unwrap_or_else(|| role_from_number(ext.get("role").and_then(Value::as_i64))),
                },
                Some(1..=6) => LorePosition::AfterChar,
                _ => match decorators.position.as_deref().or(entry.position.as_deref()) {
                    Some("after_char" | "after_desc" | "personality" | "scenario") => LorePosition::AfterChar,
                    _ => LorePosition::BeforeChar,
                },
            }
        };
        Some(Self {
            source,
            index,
            entry,
            primary,
            secondary,
            exclude,
            logic,
            scan_depth,
            always: entry.constant.unwrap_or(false) || decorators.activate,
            never: decorators.dont_activate,
            recursive,
            exclude_recursion: ext.get("exclude_recursion").and_then(Value::as_bool).unwrap_or(false),
            prevent_recursion: ext.get("prevent_recursion").and_then(Value::as_bool).unwrap_or(false),
            position,
            body,
        })
    }

    /// The primary key that activated the entry, if it does against these texts.
    fn matches(&self, hays: &[Haystack], work: &Work) -> Option<String> {
        let found = |k: &KeyMatcher| hays.iter().any(|h| k.is_match(h, work));
        if self.exclude.iter().any(found) {
            return None;
        }
        let key = self.primary.iter().find(|k| found(k))?;
        let selective = self.entry.selective.unwrap_or(false) && !self.secondary.is_empty();
        if selective {
            let ok = match self.logic {
                SelectiveLogic::AndAny => self.secondary.iter().any(found),
                SelectiveLogic::NotAll => !self.secondary.iter().all(found),
                SelectiveLogic::NotAny => !self.secondary.iter().any(found),
                SelectiveLogic::AndAll => self.secondary.iter().all(found),
            };
            if !ok {
                return None;
            }
        }
        Some(key.text().to_owned())
    }
}

/// Warnings, and how many more regex keys may be compiled in this scan.
struct Diagnostics {
    warnings: Vec<String>,
    regex_budget: usize,
    /// Compiled-regex bytes that may still be spent ([`MAX_REGEX_TOTAL_BYTES`]).
    regex_bytes: usize,
    /// Bytes of entry content that may still be kept ([`MAX_LORE_TEXT_BYTES`]).
    text_budget: usize,
    /// Entries left out because the content budget was spent.
    over_text_budget: usize,
}

fn compile_key(
    key: &str,
    use_regex: bool,
    case_sensitive: bool,
    whole_word: bool,
    label: &str,
    diagnostics: &mut Diagnostics,
) -> Option<KeyMatcher> {
    let trimmed = key.trim();
    if trimmed.is_empty() {
        return None;
    }
    let (pattern, flags) = match slash_regex(trimmed) {
        Some((p, f)) => (p, Some(f)),
        None if use_regex => (trimmed, None),
        None => {
            let needle = if case_sensitive { trimmed.to_owned() } else { trimmed.to_lowercase() };
            return Some(KeyMatcher::Plain { text: trimmed.to_owned(), needle, case_sensitive, whole_word });
        }
    };
    let warnings = &mut diagnostics.warnings;
    if diagnostics.regex_budget == 0 {
        warnings.push(format!("entry {label:?}: more than {MAX_REGEX_KEYS_PER_SCAN} regex keys; {trimmed:?} ignored"));
        return None;
    }
    diagnostics.regex_budget -= 1;
    if pattern.len() > MAX_REGEX_PATTERN_BYTES {
        warnings.push(format!("entry {label:?}: regex key longer than {MAX_REGEX_PATTERN_BYTES} bytes ignored"));
        return None;
    }
    let mut builder = RegexBuilder::new(pattern);
    builder.nest_limit(64);
    match flags {
        // `/…/flags`: JavaScript semantics, case-sensitive unless `i`.
        Some(flags) => {
            builder
                .case_insensitive(flags.contains('i'))
                .multi_line(flags.contains('m'))
                .dot_matches_new_line(flags.contains('s'));
        }
        None => {
            builder.case_insensitive(!case_sensitive);
        }
    }
    // Small size limits first: real keys fit the first or second, and each attempt's limit is
    // charged to the scan's regex budget, which bounds both compile time and memory (the
    // compiled program and its lazy DFA cache each stay under the limit that built them).
    for limit in REGEX_SIZE_TIERS {
        if limit > diagnostics.regex_bytes {
            warnings.push(format!(
                "entry {label:?}: regex key {trimmed:?} ignored: the scan's regex keys already use {MAX_REGEX_TOTAL_BYTES} bytes"
            ));
            return None;
        }
        diagnostics.regex_bytes -= limit;
        builder.size_limit(limit).dfa_size_limit(limit);
        match builder.build() {
            Ok(regex) => {
                // Matching costs more per byte the larger the program (when its DFA gives up).
                let cost_per_byte = REGEX_WORK_FACTOR * (limit / REGEX_SIZE_TIERS[0]) as u64;
                return Some(KeyMatcher::Regex { text: trimmed.to_owned(), regex, cost_per_byte });
            }
            Err(regex::Error::CompiledTooBig(_)) => continue,
            Err(e) => {
                let first_line = e.to_string().lines().last().unwrap_or_default().to_owned();
                warnings.push(format!("entry {label:?}: regex key {trimmed:?} ignored: {first_line}"));
                return None;
            }
        }
    }
    warnings.push(format!("entry {label:?}: regex key {trimmed:?} ignored: it compiles to more than {MAX_REGEX_COMPILED_BYTES} bytes"));
    None
}

/// Size limits tried in turn for a regex key, smallest first.
const REGEX_SIZE_TIERS: [usize; 4] = [16 * 1024, 64 * 1024, 256 * 1024, MAX_REGEX_COMPILED_BYTES];

/// `/pattern/flags` → (pattern, flags), as SillyTavern recognises regex keys.
fn slash_regex(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('/')?;
    let end = rest.rfind('/')?;
    let (pattern, flags) = (&rest[..end], &rest[end + 1..]);
    if pattern.is_empty() || !flags.chars().all(|c| "gimsuyvd".contains(c)) {
        return None;
    }
    Some((pattern, flags))
}

/// V3 decorators: `@@name value` lines at the top of an entry's content.
#[derive(Default)]
struct Decorators {
    activate: bool,
    dont_activate: bool,
    depth: Option<usize>,
    role: Option<Role>,
    scan_depth: Option<usize>,
    additional_keys: Vec<String>,
    exclude_keys: Vec<String>,
    position: Option<String>,
}

fn parse_decorators(content: &str) -> (Decorators, &str) {
    let mut d = Decorators::default();
    let mut rest = content;
    while let Some(line_body) = rest.strip_prefix("@@") {
        let (line, after) = match line_body.find('\n') {
            Some(n) => (&line_body[..n], &line_body[n + 1..]),
            None => (line_body, ""),
        };
        rest = after;
        // `@@@` lines are fallbacks for tools that lack the decorator before; skip them.
        if line.starts_with('@') {
            continue;
        }
        let line = line.trim();
        let (name, value) = match line.find(char::is_whitespace) {
            Some(n) => (&line[..n], line[n..].trim()),
            None => (line, ""),
        };
        let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        match name {
            "activate" => d.activate = true,
            "dont_activate" => d.dont_activate = true,
            "depth" => d.depth = value.parse().ok(),
            "scan_depth" => d.scan_depth = value.parse().ok(),
            "role" => {
                d.role = match value {
                    "system" => Some(Role::System),
                    "user" => Some(Role::User),
                    "assistant" => Some(Role::Assistant),
                    _ => None,
                }
            }
            "additional_keys" => d.additional_keys.extend(list()),
            "exclude_keys" => d.exclude_keys.extend(list()),
            "position" => d.position = Some(value.to_owned()),
            _ => {}
        }
    }
    (d, rest)
}
