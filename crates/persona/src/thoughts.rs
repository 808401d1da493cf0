//! Dual-layer replies (after HER and CoSER): `[inner thought]` is private, `(action)` and
//! plain text are public. Models, small ones above all, get the notation only roughly right, so
//! the parser is a forgiving state machine that never looks ahead — which also makes it work on
//! streamed text: push chunks as they arrive and get typed pieces back at once.
//!
//! Rules:
//! * `[` opens a thought, `(` or `*` opens an action (`*smiles*` is the other common
//!   role-play notation). Everything else outside them is speech.
//! * With the character's inner thoughts off ([`ThoughtParser::without_thoughts`]) only `*`
//!   is markup: brackets and parentheses are ordinary punctuation in speech, and actions are
//!   written back as `*action*`.
//! * Inside a thought, `[`…`]` pairs nest and stay part of the thought, and `(`, `*` are
//!   plain text; inside a `(` action, `(`…`)` pairs nest and `[`, `*` are plain text.
//! * A line break ends an open thought or action: they are inline, and a model that forgot
//!   the closing bracket has usually moved on to speaking by the next line.
//! * A closing `]` or `)` with nothing open is dropped.
//! * At the end of the text, an open thought or action simply ends.

use serde::{Deserialize, Serialize};

/// What a piece of the reply is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    Thought,
    Action,
    Speech,
}

/// A piece of streamed output. Consecutive deltas of one segment share its kind; `opens` is
/// true on the first delta of each new segment (so a UI starts a new bubble or line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentDelta {
    pub kind: SegmentKind,
    pub text: String,
    pub opens: bool,
}

/// A whole segment of a parsed reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub kind: SegmentKind,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Speech,
    Thought {
        depth: usize,
    },
    /// `closer` is `)` or `*`.
    Action {
        closer: char,
        depth: usize,
    },
}

/// Incremental parser: [`ThoughtParser::push`] chunks, read the deltas, and take the whole
/// [`ParsedReply`] at the end with [`ThoughtParser::finish`].
#[derive(Clone, Debug)]
pub struct ThoughtParser {
    state: State,
    /// Whether `[` and `(` are markup (the inner-thoughts option is on).
    brackets: bool,
    /// Whether the current segment has produced text yet (an empty `()` makes no segment).
    started: bool,
    segments: Vec<Segment>,
}

impl Default for ThoughtParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ThoughtParser {
    /// A parser for replies in the inner-thoughts format: `[thought] (action) speech`.
    pub fn new() -> Self {
        Self { state: State::Speech, brackets: true, started: false, segments: Vec::new() }
    }

    /// A parser for characters whose inner thoughts are off: only `*action*` is markup, so a
    /// parenthesis in ordinary speech stays speech.
    pub fn without_thoughts() -> Self {
        Self { brackets: false, ..Self::new() }
    }

    /// [`Self::new`] when `thoughts` is on, else [`Self::without_thoughts`].
    pub fn for_thoughts(thoughts: bool) -> Self {
        if thoughts { Self::new() } else { Self::without_thoughts() }
    }

    fn kind(&self) -> SegmentKind {
        match self.state {
            State::Speech => SegmentKind::Speech,
            State::Thought { .. } => SegmentKind::Thought,
            State::Action { .. } => SegmentKind::Action,
        }
    }

    fn switch(&mut self, state: State) {
        self.state = state;
        self.started = false;
    }

    fn emit(&mut self, c: char, out: &mut Vec<SegmentDelta>) {
        let kind = self.kind();
        let opens = !self.started;
        self.started = true;
        match out.last_mut() {
            Some(last) if !opens && last.kind == kind => last.text.push(c),
            _ => out.push(SegmentDelta { kind, text: c.to_string(), opens }),
        }
        match self.segments.last_mut() {
            Some(last) if !opens => last.text.push(c),
            _ => self.segments.push(Segment { kind, text: c.to_string() }),
        }
    }

    /// Feed the next piece of output; returns what it adds, typed.
    pub fn push(&mut self, chunk: &str) -> Vec<SegmentDelta> {
        let mut out = Vec::new();
        for c in chunk.chars() {
            match (self.state, c) {
                (State::Speech, '[' | '(' | ']' | ')') if !self.brackets => self.emit(c, &mut out),
                (State::Speech, '[') => self.switch(State::Thought { depth: 0 }),
                (State::Speech, '(') => self.switch(State::Action { closer: ')', depth: 0 }),
                (State::Speech, '*') => self.switch(State::Action { closer: '*', depth: 0 }),
                (State::Speech, ']' | ')') => {}
                (State::Thought { .. } | State::Action { .. }, '\n') => {
                    self.switch(State::Speech);
                    self.emit(c, &mut out);
                }
                (State::Thought { depth }, '[') => {
                    self.state = State::Thought { depth: depth + 1 };
                    self.emit(c, &mut out);
                }
                (State::Thought { depth: 0 }, ']') => self.switch(State::Speech),
                (State::Thought { depth }, ']') => {
                    self.state = State::Thought { depth: depth - 1 };
                    self.emit(c, &mut out);
                }
                (State::Action { closer: ')', depth }, '(') => {
                    self.state = State::Action { closer: ')', depth: depth + 1 };
                    self.emit(c, &mut out);
                }
                (State::Action { closer: ')', depth: 0 }, ')') | (State::Action { closer: '*', .. }, '*') => {
                    self.switch(State::Speech)
                }
                (State::Action { closer: ')', depth }, ')') => {
                    self.state = State::Action { closer: ')', depth: depth - 1 };
                    self.emit(c, &mut out);
                }
                _ => self.emit(c, &mut out),
            }
        }
        out
    }

    /// The whole reply so far, segments merged and whitespace tidied.
    pub fn reply(&self) -> ParsedReply {
        ParsedReply { star_actions: !self.brackets, ..ParsedReply::from_segments(&self.segments) }
    }

    /// End of output: whatever is open ends here.
    pub fn finish(self) -> ParsedReply {
        self.reply()
    }
}

/// A reply split into its layers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedReply {
    /// Non-empty segments in order, each trimmed.
    pub segments: Vec<Segment>,
    /// Actions are written back as `*action*`, not `(action)`: parentheses are plain text
    /// when inner thoughts are off.
    #[serde(skip)]
    pub star_actions: bool,
}

impl ParsedReply {
    fn from_segments(raw: &[Segment]) -> Self {
        let segments = raw
            .iter()
            .filter_map(|s| {
                let text = s.text.trim();
                (!text.is_empty()).then(|| Segment { kind: s.kind, text: text.to_owned() })
            })
            .collect();
        Self { segments, star_actions: false }
    }

    fn joined(&self, kind: SegmentKind, separator: &str) -> String {
        self.segments.iter().filter(|s| s.kind == kind).map(|s| s.text.as_str()).collect::<Vec<_>>().join(separator)
    }

    /// All thoughts, joined with spaces.
    pub fn thought(&self) -> String {
        self.joined(SegmentKind::Thought, " ")
    }

    /// All actions, joined with spaces.
    pub fn action(&self) -> String {
        self.joined(SegmentKind::Action, " ")
    }

    /// All speech, joined with spaces.
    pub fn speech(&self) -> String {
        self.joined(SegmentKind::Speech, " ")
    }

    /// The reply in canonical notation: `[thought] (action) speech`, thoughts left out unless
    /// `with_thoughts`. Actions always come back in parentheses, whatever the model used.
    pub fn to_text(&self, with_thoughts: bool) -> String {
        let mut parts = Vec::new();
        for s in &self.segments {
            match s.kind {
                SegmentKind::Thought if with_thoughts => parts.push(format!("[{}]", s.text)),
                SegmentKind::Thought => {}
                SegmentKind::Action if self.star_actions => parts.push(format!("*{}*", s.text)),
                SegmentKind::Action => parts.push(format!("({})", s.text)),
                SegmentKind::Speech => parts.push(s.text.clone()),
            }
        }
        parts.join(" ")
    }
}

/// Parse a whole reply at once.
pub fn parse_reply(text: &str) -> ParsedReply {
    parse_reply_with(text, true)
}

/// Parse a whole reply at once, brackets as markup only when `thoughts` is on
/// ([`ThoughtParser::for_thoughts`]).
pub fn parse_reply_with(text: &str, thoughts: bool) -> ParsedReply {
    let mut parser = ThoughtParser::for_thoughts(thoughts);
    parser.push(text);
    parser.finish()
}

/// `text` without its `[thoughts]`, for the history the model sees later.
pub fn strip_thoughts(text: &str) -> String {
    parse_reply(text).to_text(false)
}
