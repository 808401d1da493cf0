//! What is stored: characters (their cards, as V3 JSON) and sessions (the chat, its summaries).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use persona::{CardSpec, Character, ExportSpec, InnerThoughts, Profile};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};

/// A character as stored: the card in V3 form (every field of the imported card kept, unknown
/// ones included) and the avatar PNG it came in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCharacter {
    pub id: String,
    /// The whole card as `chara_card_v3` JSON.
    pub card: Value,
    /// The PNG file the card came in (base64), kept for PNG export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_png: Option<String>,
    /// "v1", "v2" or "v3": what the imported file was.
    pub imported_spec: String,
    /// Unix ms.
    pub created_at: u64,
    pub updated_at: u64,
    /// What the character has come to think, in its own words, one note per rolling summary
    /// (CharacterGPT's persona that grows chapter by chapter): kept here, not in the card, so an
    /// exported card stays the author's; in backups. The user may edit them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<PersonaNote>,
}

/// One of a character's persona notes (see [`StoredCharacter::notes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaNote {
    pub id: String,
    pub text: String,
    /// Unix ms.
    pub created_at: u64,
    /// The chat whose summary it came from; none when the user wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Most notes a character keeps (the oldest go first); the prompt shows the latest
/// [`NOTES_IN_PROMPT`].
pub const MAX_PERSONA_NOTES: usize = 12;
pub const NOTES_IN_PROMPT: usize = 3;

pub(crate) fn spec_name(spec: CardSpec) -> &'static str {
    match spec {
        CardSpec::V1 => "v1",
        CardSpec::V2 => "v2",
        CardSpec::V3 => "v3",
    }
}

impl StoredCharacter {
    pub fn new(id: String, character: &Character, spec: CardSpec, avatar_png: Option<&[u8]>, now: u64) -> Self {
        Self {
            id,
            card: character.to_value(ExportSpec::V3),
            avatar_png: avatar_png.map(|b| BASE64.encode(b)),
            imported_spec: spec_name(spec).to_string(),
            created_at: now,
            updated_at: now,
            notes: Vec::new(),
        }
    }

    /// The latest notes, oldest first, as the prompt shows them.
    pub fn prompt_notes(&self) -> Vec<String> {
        self.notes.iter().rev().take(NOTES_IN_PROMPT).rev().map(|n| n.text.clone()).collect()
    }

    /// The card, parsed.
    pub fn character(&self) -> Result<Character> {
        Character::from_value(self.card.clone()).map(|(c, _)| c).map_err(|e| EngineError::Corrupt(format!("character {}: {e}", self.id)))
    }

    pub fn avatar_bytes(&self) -> Result<Option<Vec<u8>>> {
        self.avatar_png
            .as_deref()
            .map(|b| BASE64.decode(b).map_err(|e| EngineError::Corrupt(format!("avatar of character {}: {e}", self.id))))
            .transpose()
    }

    /// What `characters.get` returns: the card's `data` fields (spec names, e.g. `first_mes`)
    /// flattened beside `id`, plus the profile, the inner-thoughts option and whether it shares
    /// the user's profile (`userProfile`), read from its extensions. The same shape, partly, is what `characters.update` takes.
    pub fn view(&self) -> Result<Value> {
        let character = self.character()?;
        let mut out = match self.card.get("data") {
            Some(Value::Object(data)) => data.clone(),
            _ => Map::new(),
        };
        out.insert("id".into(), Value::String(self.id.clone()));
        out.insert("importedSpec".into(), Value::String(self.imported_spec.clone()));
        out.insert("hasAvatar".into(), Value::Bool(self.avatar_png.is_some()));
        out.insert("createdAt".into(), Value::from(self.created_at));
        out.insert("updatedAt".into(), Value::from(self.updated_at));
        out.insert("profile".into(), serde_json::to_value(character.profile()).unwrap_or(Value::Null));
        out.insert("innerThoughts".into(), serde_json::to_value(character.inner_thoughts()).unwrap_or(Value::Null));
        out.insert("userProfile".into(), Value::Bool(character.shares_user_profile()));
        out.insert("notes".into(), serde_json::to_value(&self.notes).unwrap_or(Value::Null));
        Ok(Value::Object(out))
    }

    /// Apply a `characters.update` patch: card `data` fields by their spec names, plus
    /// `profile` (an object, or null to remove it), `innerThoughts` and `userProfile` (bool). The result is checked
    /// like an imported card; on error nothing changes.
    pub fn apply_patch(&mut self, patch: &Value, now: u64) -> Result<()> {
        let Value::Object(patch) = patch else { return Err(EngineError::BadRequest("a character patch must be an object".into())) };
        let mut card = self.card.clone();
        let Some(Value::Object(data)) = card.get_mut("data") else { return Err(EngineError::Corrupt(format!("character {} has no card data", self.id))) };
        for (key, value) in patch {
            match key.as_str() {
                "profile" | "innerThoughts" | "userProfile" | "notes" => {}
                "id" | "importedSpec" | "hasAvatar" | "createdAt" | "updatedAt" => {
                    return Err(EngineError::BadRequest(format!("`{key}` cannot be changed")));
                }
                _ => {
                    data.insert(key.clone(), value.clone());
                }
            }
        }
        let (mut character, _) = Character::from_value(card)?;
        if let Some(profile) = patch.get("profile") {
            let profile: Option<Profile> =
                serde_json::from_value(profile.clone()).map_err(|e| EngineError::BadRequest(format!("profile: {e}")))?;
            character.set_profile(profile);
        }
        if let Some(option) = patch.get("innerThoughts") {
            let option: InnerThoughts =
                serde_json::from_value(option.clone()).map_err(|e| EngineError::BadRequest(format!("innerThoughts: {e}")))?;
            character.set_inner_thoughts(option);
        }
        match patch.get("userProfile") {
            None => {}
            Some(Value::Bool(shares)) => character.set_shares_user_profile(*shares),
            Some(_) => return Err(EngineError::BadRequest("userProfile: true or false".into())),
        }
        if character.name.trim().is_empty() {
            return Err(EngineError::BadRequest("a character needs a name".into()));
        }
        if let Some(notes) = patch.get("notes") {
            self.notes = self.edited_notes(notes, now)?;
        }
        self.card = character.to_value(ExportSpec::V3);
        self.updated_at = now;
        Ok(())
    }
}

impl StoredCharacter {
    /// The notes as the user edited them: `[{ id?, text }]`, a note with a known id keeps its
    /// date and source, one without is new; notes left out are deleted.
    fn edited_notes(&self, notes: &Value, now: u64) -> Result<Vec<PersonaNote>> {
        #[derive(Deserialize)]
        struct Edit {
            #[serde(default)]
            id: Option<String>,
            text: String,
        }
        let edits: Vec<Edit> = serde_json::from_value(notes.clone()).map_err(|e| EngineError::BadRequest(format!("notes: {e}")))?;
        if edits.len() > MAX_PERSONA_NOTES || edits.iter().any(|e| e.text.trim().is_empty() || e.text.len() > 1000) {
            return Err(EngineError::BadRequest(format!("notes: at most {MAX_PERSONA_NOTES}, each 1 to 1000 bytes")));
        }
        Ok(edits
            .into_iter()
            .map(|e| match e.id.and_then(|id| self.notes.iter().find(|n| n.id == id)) {
                Some(old) => PersonaNote { text: e.text.trim().to_string(), ..old.clone() },
                None => PersonaNote { id: memory::record::new_id(), text: e.text.trim().to_string(), created_at: now, session_id: None },
            })
            .collect())
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    User,
    Assistant,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub role: Speaker,
    /// What is said: for the character, the speech without thoughts and actions.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The message as the model sees it in the history: `[thought] (action) speech`.
    pub raw: String,
    /// Unix ms.
    pub created_at: u64,
    /// The character's greeting (the first message of a session).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub greeting: bool,
    /// Memory records written from this message (its own, and facts taken from it): they
    /// follow the message when it is edited or deleted.
    #[serde(default)]
    pub memory_ids: Vec<String>,
    /// The memories the reply's prompt used (pinned and retrieved, in prompt order): what the
    /// character knew when it wrote this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_memory_ids: Vec<String>,
    /// Saved while the reply was being written, which never finished (the page was closed or
    /// reloaded, or the engine failed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
    /// Every version of a regenerated reply, oldest first; the message's own fields (id
    /// included) are those of `swipes[swipe]`. Empty for a message with one version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swipes: Vec<Swipe>,
    /// Which of `swipes` is shown, and used in the prompt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub swipe: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One version of a reply (see [`Message::swipes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Swipe {
    pub id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub raw: String,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_memory_ids: Vec<String>,
}

impl Message {
    /// The version shown, as a swipe.
    pub fn shown(&self) -> Swipe {
        Swipe {
            id: self.id.clone(),
            text: self.text.clone(),
            thought: self.thought.clone(),
            action: self.action.clone(),
            raw: self.raw.clone(),
            created_at: self.created_at,
            unfinished: self.unfinished,
            used_memory_ids: self.used_memory_ids.clone(),
        }
    }

    /// Show `version` (its fields become the message's). The caller moves the memory records.
    pub fn show(&mut self, version: &Swipe) {
        self.id = version.id.clone();
        self.text = version.text.clone();
        self.thought = version.thought.clone();
        self.action = version.action.clone();
        self.raw = version.raw.clone();
        self.created_at = version.created_at;
        self.unfinished = version.unfinished;
        self.used_memory_ids = version.used_memory_ids.clone();
    }

    /// The shown version's fields copied back into `swipes`, after an edit of the message.
    pub fn sync_shown(&mut self) {
        if let Some(slot) = self.swipes.get_mut(self.swipe) {
            *slot = Swipe {
                id: self.id.clone(),
                text: self.text.clone(),
                thought: self.thought.clone(),
                action: self.action.clone(),
                raw: self.raw.clone(),
                created_at: self.created_at,
                unfinished: self.unfinished,
                used_memory_ids: self.used_memory_ids.clone(),
            };
        }
    }

    /// Add `version` to the versions (the shown one becomes the first if there were none);
    /// returns its index. Shown only if `show`.
    pub fn add_swipe(&mut self, version: Swipe, show: bool) -> usize {
        if self.swipes.is_empty() {
            self.swipes.push(self.shown());
            self.swipe = 0;
        }
        self.swipes.push(version);
        let index = self.swipes.len() - 1;
        if show {
            self.swipe = index;
            let version = self.swipes[index].clone();
            self.show(&version);
        }
        index
    }
}

/// A rolling summary of the messages from the first up to `through_id`, written by the model
/// in the background; it stands in for those messages once they no longer fit the context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub through_id: String,
    pub text: String,
    /// The event memory written with it.
    pub memory_id: Option<String>,
    pub created_at: u64,
}

/// A stored record that could not be read, set aside (not deleted) so the rest stays usable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadableRecord {
    /// The object store it was in (`characters`, `sessions`, `records`, `indexes`, `meta`).
    pub store: String,
    pub key: String,
    /// Why it could not be read.
    pub error: String,
    /// The stored value as JSON text, when it has one: kept for recovery, and exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When it was set aside (unix ms).
    pub found_at: u64,
}

/// A chat of the user with one character.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub character_id: String,
    pub user_name: String,
    pub created_at: u64,
    pub updated_at: u64,
    /// Which of the card's greetings opened the chat (0: `first_mes`, then the alternates).
    #[serde(default)]
    pub greeting_index: usize,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub summaries: Vec<SessionSummary>,
}

impl Session {
    pub fn message_index(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.id == id)
    }

    /// The message that shows or holds version `id` (a reply's id, or any of its swipes').
    pub fn message_with_version(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.id == id || m.swipes.iter().any(|s| s.id == id))
    }

    /// The newest summary whose last message still exists, with that message's index.
    pub fn latest_summary(&self) -> Option<(usize, &SessionSummary)> {
        self.summaries.iter().rev().find_map(|s| self.message_index(&s.through_id).map(|i| (i, s)))
    }

    /// What `sessions.list` shows: everything but the messages, plus their count and the last.
    pub fn overview(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "characterId": self.character_id,
            "userName": self.user_name,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "messageCount": self.messages.len(),
            "lastMessage": self.messages.last().map(|m| m.text.clone()),
        })
    }
}
