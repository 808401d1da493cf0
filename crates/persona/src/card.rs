//! The one internal character type, read from Character Card V1, V2 and V3 JSON and written
//! back as V2 or V3 without losing anything.
//!
//! Where the specs put things:
//! * V1 is a flat object: `name`, `description`, `personality`, `scenario`, `first_mes`,
//!   `mes_example`.
//! * V2 is `{spec: "chara_card_v2", spec_version: "2.0", data: {V1 fields, creator_notes,
//!   system_prompt, post_history_instructions, alternate_greetings, character_book, tags,
//!   creator, character_version, extensions}}`.
//! * V3 is `{spec: "chara_card_v3", spec_version: "3.0", data: {V2 fields, assets, nickname,
//!   creator_notes_multilingual, source, group_only_greetings, creation_date,
//!   modification_date}}`.
//!
//! Lossless: unknown keys (in `data`, at the top level, in `extensions`, in the lorebook and its
//! entries) are kept and written back; so are known keys whose value had an unexpected type
//! (see `fields.rs`). A V3 card exported as V2 keeps its V3-only fields inside `data`, where V2
//! readers ignore them, so V3 → V2 → V3 loses nothing either. Tools such as SillyTavern also
//! repeat the V1 fields at the top level of a V2 card for V1-only readers; when a file had that
//! mirror, export refreshes it from the current values.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{CardError, Result};
use crate::fields::{FieldReader, FieldWriter};
use crate::limits::{MAX_CARD_JSON_BYTES, MAX_GREETINGS, MAX_NAME_BYTES};
use crate::lorebook::Lorebook;

/// The card spec a file was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardSpec {
    V1,
    V2,
    V3,
}

/// The spec to export to. V1 cannot hold greetings, lorebooks or extensions, so it is not
/// offered; V2 and V3 exports repeat the V1 fields at the top level only where the source did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportSpec {
    V2,
    V3,
}

impl ExportSpec {
    pub fn spec_name(self) -> &'static str {
        match self {
            ExportSpec::V2 => "chara_card_v2",
            ExportSpec::V3 => "chara_card_v3",
        }
    }

    pub fn spec_version(self) -> &'static str {
        match self {
            ExportSpec::V2 => "2.0",
            ExportSpec::V3 => "3.0",
        }
    }
}

/// One V3 asset (`{type, uri, name, ext}`), e.g. the icon `{type: "icon", uri: "ccdefault:",
/// name: "main", ext: "png"}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Asset {
    /// The `type` field: `icon`, `background`, `user_icon`, `emotion`, or a tool's own.
    pub kind: String,
    pub uri: String,
    pub name: String,
    pub ext: String,
    pub extra: Map<String, Value>,
}

/// A character, whatever card version it came from. Field names are the specs'; prompt-time
/// macros (`{{char}}`, `{{user}}`, …) are kept as written and replaced only when a prompt is
/// assembled (see [`crate::macros`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Character {
    pub name: String,
    pub description: String,
    pub personality: String,
    pub scenario: String,
    /// The greeting: the character's first message of every chat.
    pub first_mes: String,
    /// Example dialogue, blocks separated by `<START>`.
    pub mes_example: String,
    /// For people reading the card; never put into prompts.
    pub creator_notes: String,
    /// Replaces the default system prompt when not empty; `{{original}}` inserts the default.
    pub system_prompt: String,
    /// Sent after the chat history; `{{original}}` inserts the default instruction.
    pub post_history_instructions: String,
    pub alternate_greetings: Vec<String>,
    pub character_book: Option<Lorebook>,
    pub tags: Vec<String>,
    pub creator: String,
    pub character_version: String,
    /// Tool-specific data. Confidant's own lives under the `confidant` key (see
    /// [`crate::profile`]); every other key is kept untouched.
    pub extensions: Map<String, Value>,
    // V3 additions.
    pub assets: Option<Vec<Asset>>,
    /// Used for `{{char}}` in prompts when set.
    pub nickname: Option<String>,
    pub creator_notes_multilingual: Option<BTreeMap<String, String>>,
    pub source: Option<Vec<String>>,
    pub group_only_greetings: Vec<String>,
    /// Unix seconds.
    pub creation_date: Option<i64>,
    pub modification_date: Option<i64>,
    /// Keys of `data` this crate does not know (or known keys whose value had another type).
    pub extra: Map<String, Value>,
    /// Keys at the top level of the card besides `spec`, `spec_version` and `data`.
    pub card_extra: Map<String, Value>,
}

const V1_FIELDS: [&str; 6] = ["name", "description", "personality", "scenario", "first_mes", "mes_example"];

impl Character {
    /// A character with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// The name `{{char}}` stands for: the V3 nickname when set, else the name.
    pub fn display_name(&self) -> &str {
        match &self.nickname {
            Some(n) if !n.trim().is_empty() => n,
            _ => &self.name,
        }
    }

    /// All greetings in swipe order: `first_mes`, then `alternate_greetings`. Macros are not
    /// replaced here; use [`crate::macros::MacroContext::apply`] on the one chosen.
    pub fn greetings(&self) -> Vec<&str> {
        std::iter::once(self.first_mes.as_str()).chain(self.alternate_greetings.iter().map(String::as_str)).collect()
    }

    /// The example dialogue split into its `<START>` blocks (case-insensitive), trimmed, empty
    /// blocks left out.
    pub fn example_blocks(&self) -> Vec<&str> {
        split_ascii_ci(&self.mes_example, "<start>").into_iter().map(str::trim).filter(|b| !b.is_empty()).collect()
    }

    /// Read a card from JSON bytes (V1, V2 or V3). Returns the spec it was written in.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<(Self, CardSpec)> {
        if bytes.len() > MAX_CARD_JSON_BYTES {
            return Err(CardError::TooLarge { what: "card JSON", size: bytes.len(), limit: MAX_CARD_JSON_BYTES });
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| CardError::NotUtf8 { what: "card JSON", valid_up_to: e.valid_up_to() })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // serde_json refuses nesting deeper than 128 levels, so hostile depth is an error too.
        let value: Value = serde_json::from_str(text)?;
        Self::from_value(value)
    }

    /// Read a card from a parsed JSON value.
    pub fn from_value(value: Value) -> Result<(Self, CardSpec)> {
        let Value::Object(mut top) = value else {
            return Err(CardError::NotACard("the JSON is not an object".into()));
        };
        let spec = match top.get("spec") {
            Some(Value::String(s)) if s == "chara_card_v3" => Some(CardSpec::V3),
            Some(Value::String(s)) if s == "chara_card_v2" => Some(CardSpec::V2),
            Some(Value::String(s)) => return Err(CardError::NotACard(format!("unsupported spec {s:?}"))),
            _ => None,
        };
        let has_data = matches!(top.get("data"), Some(Value::Object(_)));
        match (spec, has_data) {
            (_, true) => {
                let spec = spec.unwrap_or(CardSpec::V2);
                let Some(Value::Object(data)) = top.remove("data") else {
                    return Err(CardError::NotACard("`data` is not an object".into()));
                };
                // `spec` and `spec_version` are rewritten on export; drop them here.
                top.remove("spec");
                top.remove("spec_version");
                let mut character = Self::from_data(data)?;
                character.card_extra = top;
                // A V1 mirror that disagrees with `data` is stale; `data` is what V2 readers
                // use, so the mirror follows it (as it will on export).
                character.refresh_v1_mirror();
                Ok((character, spec))
            }
            (Some(_), false) => Err(CardError::NotACard("`data` is missing or not an object".into())),
            (None, false) => {
                if !matches!(top.get("name"), Some(Value::String(_))) {
                    return Err(CardError::NotACard("no `spec` and no `name`".into()));
                }
                // V1: every field at the top level. Unknown keys stay at the top level, and so
                // do the V1 fields on export (as a refreshed mirror), so V1-only readers still
                // read the exported card.
                let mut character = Self::from_data(top)?;
                let extra = std::mem::take(&mut character.extra);
                character.card_extra = extra;
                let mirror = [
                    &character.name,
                    &character.description,
                    &character.personality,
                    &character.scenario,
                    &character.first_mes,
                    &character.mes_example,
                ];
                for (key, value) in V1_FIELDS.into_iter().zip(mirror) {
                    character.card_extra.insert(key.to_owned(), Value::String(value.clone()));
                }
                Ok((character, CardSpec::V1))
            }
        }
    }

    fn from_data(data: Map<String, Value>) -> Result<Self> {
        let mut f = FieldReader::new(data);
        let alternate_greetings = f.strings("alternate_greetings").unwrap_or_default();
        let group_only_greetings = f.strings("group_only_greetings").unwrap_or_default();
        let greetings = alternate_greetings.len() + group_only_greetings.len() + 1;
        if greetings > MAX_GREETINGS {
            return Err(CardError::TooMany { what: "greetings", count: greetings, limit: MAX_GREETINGS });
        }
        let character_book = match f.object("character_book") {
            Some(book) => Some(Lorebook::from_map(book)?),
            None => None,
        };
        let assets = f.with("assets", |v| match v {
            Value::Array(items) if items.iter().all(Value::is_object) => Ok(items
                .into_iter()
                .filter_map(|i| if let Value::Object(m) = i { Some(asset_from_map(m)) } else { None })
                .collect()),
            other => Err(other),
        });
        let creator_notes_multilingual = f.with("creator_notes_multilingual", |v| match v {
            Value::Object(m) if m.values().all(Value::is_string) => Ok(m
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_default()))
                .collect::<BTreeMap<_, _>>()),
            other => Err(other),
        });
        let name = f.string("name").unwrap_or_default();
        let nickname = f.string("nickname");
        for (what, value) in [("character name", Some(&name)), ("character nickname", nickname.as_ref())] {
            if let Some(value) = value
                && value.len() > MAX_NAME_BYTES
            {
                return Err(CardError::TooLarge { what, size: value.len(), limit: MAX_NAME_BYTES });
            }
        }
        Ok(Self {
            name,
            description: f.string("description").unwrap_or_default(),
            personality: f.string("personality").unwrap_or_default(),
            scenario: f.string("scenario").unwrap_or_default(),
            first_mes: f.string("first_mes").unwrap_or_default(),
            mes_example: f.string("mes_example").unwrap_or_default(),
            creator_notes: f.string("creator_notes").unwrap_or_default(),
            system_prompt: f.string("system_prompt").unwrap_or_default(),
            post_history_instructions: f.string("post_history_instructions").unwrap_or_default(),
            alternate_greetings,
            character_book,
            tags: f.strings("tags").unwrap_or_default(),
            creator: f.string("creator").unwrap_or_default(),
            character_version: f.string("character_version").unwrap_or_default(),
            extensions: f.object("extensions").unwrap_or_default(),
            assets,
            nickname,
            creator_notes_multilingual,
            source: f.strings("source"),
            group_only_greetings,
            creation_date: f.int("creation_date"),
            modification_date: f.int("modification_date"),
            extra: f.into_extra(),
            card_extra: Map::new(),
        })
    }

    /// The card as a JSON value of the given spec.
    pub fn to_value(&self, spec: ExportSpec) -> Value {
        let mut w = FieldWriter::new(&self.extra);
        w.string("name", &self.name);
        w.string("description", &self.description);
        w.string("personality", &self.personality);
        w.string("scenario", &self.scenario);
        w.string("first_mes", &self.first_mes);
        w.string("mes_example", &self.mes_example);
        w.string("creator_notes", &self.creator_notes);
        w.string("system_prompt", &self.system_prompt);
        w.string("post_history_instructions", &self.post_history_instructions);
        w.strings("alternate_greetings", &self.alternate_greetings);
        if let Some(book) = &self.character_book {
            w.put("character_book", book.to_value(spec), false);
        }
        w.strings("tags", &self.tags);
        w.string("creator", &self.creator);
        w.string("character_version", &self.character_version);
        w.put("extensions", Value::Object(self.extensions.clone()), self.extensions.is_empty());
        if let Some(assets) = &self.assets {
            w.put("assets", Value::Array(assets.iter().map(asset_to_value).collect()), false);
        }
        w.opt("nickname", &self.nickname);
        if let Some(m) = &self.creator_notes_multilingual {
            let map = m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            w.put("creator_notes_multilingual", Value::Object(map), false);
        }
        w.opt_strings("source", &self.source);
        // Required in V3; in V2 only written when there is something to keep.
        if spec == ExportSpec::V3 || !self.group_only_greetings.is_empty() {
            w.strings("group_only_greetings", &self.group_only_greetings);
        }
        w.opt("creation_date", &self.creation_date);
        w.opt("modification_date", &self.modification_date);
        let data = w.finish();

        let mut top = self.card_extra.clone();
        refresh_mirror(&mut top, self);
        top.insert("spec".into(), Value::String(spec.spec_name().into()));
        top.insert("spec_version".into(), Value::String(spec.spec_version().into()));
        top.insert("data".into(), Value::Object(data));
        Value::Object(top)
    }

    /// The card as pretty-printed JSON bytes of the given spec.
    pub fn to_json_bytes(&self, spec: ExportSpec) -> Vec<u8> {
        // Serialising a `Value` cannot fail (all keys are strings).
        serde_json::to_vec_pretty(&self.to_value(spec)).unwrap_or_default()
    }
}

impl Character {
    fn refresh_v1_mirror(&mut self) {
        let mut top = std::mem::take(&mut self.card_extra);
        refresh_mirror(&mut top, self);
        self.card_extra = top;
    }
}

/// Top-level copies of the V1 fields (where the file had them) set to the current values.
fn refresh_mirror(top: &mut Map<String, Value>, c: &Character) {
    let current = [&c.name, &c.description, &c.personality, &c.scenario, &c.first_mes, &c.mes_example];
    for (key, value) in V1_FIELDS.into_iter().zip(current) {
        if let Some(Value::String(s)) = top.get_mut(key) {
            s.clone_from(value);
        }
    }
}

fn asset_from_map(map: Map<String, Value>) -> Asset {
    let mut f = FieldReader::new(map);
    Asset {
        kind: f.string("type").unwrap_or_default(),
        uri: f.string("uri").unwrap_or_default(),
        name: f.string("name").unwrap_or_default(),
        ext: f.string("ext").unwrap_or_default(),
        extra: f.into_extra(),
    }
}

fn asset_to_value(asset: &Asset) -> Value {
    let mut w = FieldWriter::new(&asset.extra);
    w.string("type", &asset.kind);
    w.string("uri", &asset.uri);
    w.string("name", &asset.name);
    w.string("ext", &asset.ext);
    Value::Object(w.finish())
}

/// Split `text` at every ASCII-case-insensitive occurrence of `separator` (lowercase ASCII).
pub(crate) fn split_ascii_ci<'a>(text: &'a str, separator: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    let sep = separator.as_bytes();
    while i + sep.len() <= bytes.len() {
        if bytes[i..i + sep.len()].eq_ignore_ascii_case(sep) {
            parts.push(&text[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&text[start..]);
    parts
}
