//! Confidant's own per-character data: the psychological profile and the inner-thoughts
//! option. Both live in the card under `extensions.confidant` (`{"profile": {…},
//! "inner_thoughts": {…}}`), so exporting and importing through other tools keeps them, and
//! unknown keys there (from a newer Confidant) are kept too.
//!
//! # The profile
//!
//! In the spirit of PsyMem (a character as a text description plus numeric psychological
//! indicators the reply must follow), kept to indicators a small model can act on once they are
//! turned into plain sentences. Every indicator is optional; an unset one adds nothing.
//!
//! | key | range | meaning |
//! | --- | --- | --- |
//! | `openness` | 0–100 | Big Five: curious, imaginative ↔ conventional, practical |
//! | `conscientiousness` | 0–100 | Big Five: organised, dependable ↔ careless, impulsive |
//! | `extraversion` | 0–100 | Big Five: outgoing, talkative ↔ reserved, shy |
//! | `agreeableness` | 0–100 | Big Five: warm, kind, trusting ↔ blunt, cold, argumentative |
//! | `neuroticism` | 0–100 | Big Five: anxious, easily upset ↔ calm, steady |
//! | `values` | list of words | what the character cares about most (at most 5 are rendered) |
//! | `attachment` | `secure`, `anxious`, `avoidant`, `fearful` | how they bond with others |
//! | `mood` | −100–100 | emotional baseline: gloomy ↔ cheerful |
//! | `formality` | 0–100 | speech register: slangy, casual ↔ formal, polite |
//! | `verbosity` | 0–100 | speech length: very few words ↔ long, flowing sentences |
//! | `humor` | `serious`, `dry`, `playful`, `sarcastic`, `dark`, `gentle` | kind of humour |
//! | `quirks` | list of short phrases | speech habits, catchphrases (at most 5 are rendered) |
//! | `honesty` | 0–100 | HEXACO honesty-humility: lies and boasts ↔ scrupulously honest, modest |
//! | `empathy` | 0–100 | blind to others' feelings ↔ feels them as their own |
//! | `self_esteem` | 0–100 | thinks little of themselves ↔ supremely (over)confident |
//! | `impulsivity` | 0–100 | thinks everything through ↔ acts first, thinks later |
//! | `trust` | 0–100 | trusts no one ↔ trusts everyone, naively |
//! | `assertiveness` | 0–100 | never stands up for themselves ↔ forceful, domineering |
//! | `optimism` | 0–100 | expects the worst ↔ relentlessly hopeful |
//! | `expressiveness` | 0–100 | hides every feeling ↔ wears them on their sleeve |
//! | `patience` | 0–100 | snaps at once ↔ endlessly patient |
//! | `ambition` | 0–100 | no ambitions ↔ driven above all |
//! | `spirituality` | 0–100 | sceptical of anything spiritual ↔ deeply devout |
//! | `principles` | 0–100 | anything to get their way ↔ never compromises on right and wrong |
//! | `energy` | 0–100 | always tired, slow ↔ bursting with energy |
//! | `closeness` | 0–100 | towards the user: a stranger ↔ deeply attached |
//!
//! The first twelve describe how the character thinks, feels and speaks; the fourteen after them
//! (PsyMem has 26 indicators over "intrinsic" and "extrinsic" dimensions; its list was not
//! published in what we could read, research.md §1) add the moral, social and motivational
//! sides and one towards the user (`closeness`), which persona notes may change over a chat.
//!
//! # Rendering
//!
//! [`Profile::render_lines`] gives one short sentence per indicator that is set and not
//! middling, without numbers. Scales are cut into five bands: 0–20 "very low", 21–40 "low",
//! 41–59 nothing (an average trait says nothing worth the tokens), 60–79 "high", 80–100 "very
//! high"; `mood` uses −100…−60, −59…−20, −19…19 (nothing), 20…59, 60…100. For example
//! extraversion 90 gives "Very outgoing and talkative." and 30 gives "Reserved and quiet." The
//! prompt lists the lines under "{{char}}'s nature:".

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::card::Character;
use crate::error::{CardError, Result};

/// The key under `extensions` that holds Confidant's data.
pub const EXTENSION_KEY: &str = "confidant";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentStyle {
    Secure,
    Anxious,
    Avoidant,
    Fearful,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HumorStyle {
    Serious,
    Dry,
    Playful,
    Sarcastic,
    Dark,
    Gentle,
}

/// The psychological profile. See the module docs for the indicators and their rendering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openness: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conscientiousness: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraversion: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreeableness: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuroticism: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentStyle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formality: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humor: Option<HumorStyle>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quirks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honesty: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empathy: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_esteem: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impulsivity: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertiveness: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimism: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expressiveness: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambition: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spirituality: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principles: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closeness: Option<u8>,
    /// Keys written by a newer version, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Band {
    VeryLow,
    Low,
    High,
    VeryHigh,
}

fn band(score: u8) -> Option<Band> {
    match score.min(100) {
        0..=20 => Some(Band::VeryLow),
        21..=40 => Some(Band::Low),
        41..=59 => None,
        60..=79 => Some(Band::High),
        _ => Some(Band::VeryHigh),
    }
}

/// The sentence for a 0–100 trait: [very low, low, high, very high].
fn scaled(score: Option<u8>, lines: [&str; 4]) -> Option<String> {
    let line = match band(score?)? {
        Band::VeryLow => lines[0],
        Band::Low => lines[1],
        Band::High => lines[2],
        Band::VeryHigh => lines[3],
    };
    Some(line.to_owned())
}

fn short_list(items: &[String]) -> Option<String> {
    let items: Vec<&str> = items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).take(5).collect();
    (!items.is_empty()).then(|| items.join(", "))
}

impl Profile {
    /// One short natural-language line per indicator that says something, in table order.
    pub fn render_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut push = |l: Option<String>| lines.extend(l);
        push(scaled(
            self.openness,
            [
                "Very conventional; distrusts anything new.",
                "Prefers the familiar and the practical.",
                "Curious and open to new experiences.",
                "Very curious and imaginative; loves new ideas.",
            ],
        ));
        push(scaled(
            self.conscientiousness,
            [
                "Very disorganised and impulsive.",
                "Easy-going and a little careless.",
                "Organised and reliable.",
                "Extremely organised, careful and dependable.",
            ],
        ));
        push(scaled(
            self.extraversion,
            [
                "Very shy; prefers to be alone.",
                "Reserved and quiet.",
                "Sociable and friendly.",
                "Very outgoing and talkative.",
            ],
        ));
        push(scaled(
            self.agreeableness,
            [
                "Cold, harsh and argumentative.",
                "Blunt and sceptical of others.",
                "Kind and cooperative.",
                "Extremely warm, kind and trusting.",
            ],
        ));
        push(scaled(
            self.neuroticism,
            [
                "Extremely calm; almost nothing rattles them.",
                "Calm and steady.",
                "Sensitive and prone to worry.",
                "Very anxious and easily upset.",
            ],
        ));
        push(short_list(&self.values).map(|v| format!("Cares most about: {v}.")));
        push(self.attachment.map(|a| {
            match a {
                AttachmentStyle::Secure => "Trusts others easily and feels safe when close to someone.",
                AttachmentStyle::Anxious => "Craves closeness and fears being left behind.",
                AttachmentStyle::Avoidant => "Keeps others at a distance and guards their independence.",
                AttachmentStyle::Fearful => "Longs for closeness but is afraid of getting hurt.",
            }
            .to_owned()
        }));
        push(self.mood.and_then(|m| {
            match m {
                i8::MIN..=-60 => Some("Usually gloomy and downcast."),
                -59..=-20 => Some("Often a little melancholy."),
                -19..=19 => None,
                20..=59 => Some("Generally in a good mood."),
                _ => Some("Usually cheerful and upbeat."),
            }
            .map(str::to_owned)
        }));
        push(scaled(
            self.formality,
            [
                "Speaks very casually, with slang.",
                "Speaks casually.",
                "Speaks formally and politely.",
                "Speaks very formally, with elaborate politeness.",
            ],
        ));
        push(scaled(
            self.verbosity,
            [
                "Speaks in very few words.",
                "Keeps answers short.",
                "Likes to explain things in detail.",
                "Talks at length, in long flowing sentences.",
            ],
        ));
        push(self.humor.map(|h| {
            match h {
                HumorStyle::Serious => "Rarely jokes; takes things seriously.",
                HumorStyle::Dry => "Has a dry, deadpan sense of humour.",
                HumorStyle::Playful => "Playful and fond of jokes.",
                HumorStyle::Sarcastic => "Often sarcastic.",
                HumorStyle::Dark => "Has a dark sense of humour.",
                HumorStyle::Gentle => "Has a gentle, warm sense of humour.",
            }
            .to_owned()
        }));
        push(short_list(&self.quirks).map(|q| format!("Speech habits: {q}.")));
        for (score, bands) in [
            (self.honesty, ["Lies easily and likes to boast.", "Bends the truth when it suits them.", "Honest and modest.", "Scrupulously honest; never boasts."]),
            (self.empathy, ["Barely notices how others feel.", "Not very attuned to others' feelings.", "Quick to sense how others feel.", "Deeply empathetic; feels others' pain as their own."]),
            (self.self_esteem, ["Thinks very little of themselves.", "Often doubts themselves.", "Self-assured.", "Supremely confident, even arrogant."]),
            (self.impulsivity, ["Thinks everything through before acting.", "Careful before acting.", "Often acts on impulse.", "Reckless; acts first, thinks later."]),
            (self.trust, ["Trusts no one.", "Wary of strangers.", "Trusting.", "Trusts everyone, sometimes naively."]),
            (self.assertiveness, ["Never stands up for themselves.", "Avoids confrontation.", "Says plainly what they want.", "Forceful and domineering."]),
            (self.optimism, ["Always expects the worst.", "A bit of a pessimist.", "Hopeful.", "Relentlessly optimistic."]),
            (self.expressiveness, ["Hides every feeling.", "Keeps feelings to themselves.", "Shows feelings openly.", "Wears every feeling on their sleeve."]),
            (self.patience, ["Very impatient; snaps quickly.", "Impatient.", "Patient.", "Endlessly patient."]),
            (self.ambition, ["Has no ambitions at all.", "Content with little.", "Ambitious.", "Driven by ambition above all else."]),
            (self.spirituality, ["Firmly sceptical of anything spiritual.", "Not religious.", "Spiritual.", "Deeply devout."]),
            (self.principles, ["Will do anything to get their way.", "Morally flexible.", "Principled.", "Never compromises on right and wrong."]),
            (self.energy, ["Always tired and slow.", "Low-key and unhurried.", "Energetic.", "Bursting with energy."]),
            (self.closeness, ["Treats {{user}} as a stranger.", "Guarded with {{user}}.", "Fond of {{user}}.", "Deeply attached to {{user}}."]),
        ] {
            push(scaled(score, bands));
        }
        lines
    }
}

/// The inner-thoughts option (dual-layer output after HER/CoSER): when `enabled`, the prompt
/// asks for `[thought] (action) speech` and the reply is split by
/// [`crate::thoughts::ThoughtParser`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerThoughts {
    #[serde(default)]
    pub enabled: bool,
    /// Remove `[thoughts]` from the history the model sees in later turns (CoSER strips them:
    /// other characters cannot read minds, and a small model copies old thoughts forward).
    #[serde(default = "yes")]
    pub strip_from_history: bool,
}

fn yes() -> bool {
    true
}

impl Default for InnerThoughts {
    fn default() -> Self {
        Self { enabled: false, strip_from_history: true }
    }
}

/// Everything under `extensions.confidant`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfidantExtension {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_thoughts: Option<InnerThoughts>,
    /// Whether this character shares the user's profile (One Chatbot Per Person): its chats
    /// add to the profile, and the profile is in its prompt. Off unless the user turns it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_profile: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Character {
    /// Confidant's extension data; default when absent. An error when present but malformed
    /// (a trait score of 300, say), so an editor can say what is wrong.
    pub fn confidant(&self) -> Result<ConfidantExtension> {
        match self.extensions.get(EXTENSION_KEY) {
            None | Some(Value::Null) => Ok(ConfidantExtension::default()),
            Some(v) => ConfidantExtension::deserialize(v).map_err(|e| CardError::BadExtension(e.to_string())),
        }
    }

    /// Replace Confidant's extension data (other extensions are untouched).
    pub fn set_confidant(&mut self, ext: &ConfidantExtension) {
        match serde_json::to_value(ext) {
            Ok(Value::Object(m)) if m.is_empty() => {
                self.extensions.remove(EXTENSION_KEY);
            }
            Ok(v) => {
                self.extensions.insert(EXTENSION_KEY.to_owned(), v);
            }
            // Serialising plain data into a `Value` does not fail.
            Err(_) => {}
        }
    }

    /// The profile, if set and well-formed.
    pub fn profile(&self) -> Option<Profile> {
        self.confidant().ok().and_then(|c| c.profile)
    }

    pub fn set_profile(&mut self, profile: Option<Profile>) {
        let mut ext = self.confidant().unwrap_or_default();
        ext.profile = profile;
        self.set_confidant(&ext);
    }

    /// The inner-thoughts option; off when unset or malformed.
    pub fn inner_thoughts(&self) -> InnerThoughts {
        self.confidant().ok().and_then(|c| c.inner_thoughts).unwrap_or_default()
    }

    pub fn set_inner_thoughts(&mut self, option: InnerThoughts) {
        let mut ext = self.confidant().unwrap_or_default();
        ext.inner_thoughts = Some(option);
        self.set_confidant(&ext);
    }

    /// Whether the character shares the user's profile (see [`ConfidantExtension::user_profile`]).
    pub fn shares_user_profile(&self) -> bool {
        self.confidant().ok().and_then(|c| c.user_profile).unwrap_or(false)
    }

    pub fn set_shares_user_profile(&mut self, shares: bool) {
        let mut ext = self.confidant().unwrap_or_default();
        ext.user_profile = Some(shares);
        self.set_confidant(&ext);
    }
}
