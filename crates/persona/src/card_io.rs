//! Import and export of whole card files: JSON, PNG, and (import only) CHARX.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::card::{CardSpec, Character, ExportSpec};
use crate::error::{CardError, Result};
use crate::limits::MAX_CARD_JSON_BYTES;
use crate::png_card::{CCV3_KEYWORD, CHARA_KEYWORD, card_text, is_png, scan_png, write_png_with_texts};

/// A card read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedCard {
    pub character: Character,
    /// The spec the card was written in (for a PNG, of the chunk that was used).
    pub spec: CardSpec,
    /// The avatar: the original PNG file when the card came in one. Pass it back to
    /// [`export_card_png`] to keep the image.
    pub avatar_png: Option<Vec<u8>>,
}

/// Import a card from a file's bytes, whatever its kind: PNG (by signature), CHARX (a zip with
/// `card.json`; its icon asset becomes the avatar), or JSON.
pub fn import_card(bytes: &[u8]) -> Result<ImportedCard> {
    if is_png(bytes) {
        return import_card_png(bytes);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return crate::charx::import_card_charx(bytes);
    }
    let text_start = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match text_start.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => import_card_json(bytes),
        _ => Err(CardError::UnknownFormat),
    }
}

/// Import a card from JSON bytes (V1, V2 or V3).
pub fn import_card_json(bytes: &[u8]) -> Result<ImportedCard> {
    let (character, spec) = Character::from_json_bytes(bytes)?;
    Ok(ImportedCard { character, spec, avatar_png: None })
}

/// Import a card from a PNG's `ccv3` chunk, else its `chara` chunk. A `ccv3` chunk that is
/// broken while `chara` is fine falls back to `chara`.
pub fn import_card_png(bytes: &[u8]) -> Result<ImportedCard> {
    let scan = scan_png(bytes)?;
    let from_chunk = |keyword: &'static str| -> Option<Result<(Character, CardSpec)>> {
        let text = card_text(&scan, keyword)?;
        Some(decode_base64_json(keyword, text).and_then(|json| Character::from_json_bytes(&json)))
    };
    let result = match (from_chunk(CCV3_KEYWORD), from_chunk(CHARA_KEYWORD)) {
        (Some(Ok(card)), _) => Ok(card),
        (Some(Err(_)), Some(Ok(card))) => Ok(card),
        (Some(Err(e)), _) => Err(e),
        (None, Some(result)) => result,
        (None, None) => Err(CardError::NoCardInPng),
    };
    let (character, spec) = result?;
    Ok(ImportedCard { character, spec, avatar_png: Some(bytes.to_vec()) })
}

/// Base64 as card tools write it: standard alphabet, padding optional, line breaks allowed.
fn decode_base64_json(chunk: &'static str, text: &str) -> Result<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // Check the size before decoding: the decoded length is at most 3/4 of the text.
    let decoded_max = compact.len() / 4 * 3 + 3;
    if decoded_max > MAX_CARD_JSON_BYTES + 3 {
        return Err(CardError::TooLarge { what: "card JSON", size: decoded_max, limit: MAX_CARD_JSON_BYTES });
    }
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(compact.as_bytes()).map_err(|source| CardError::Base64 { chunk, source })
}

/// The card as JSON of the given spec.
pub fn export_card_json(character: &Character, spec: ExportSpec) -> Vec<u8> {
    character.to_json_bytes(spec)
}

/// The card as a PNG: the avatar given (a PNG file, e.g. [`ImportedCard::avatar_png`]) with
/// its card chunks replaced, or a small plain image. A V3 export writes `ccv3` and, for older
/// readers, a V2 `chara` chunk; a V2 export writes `chara` only.
pub fn export_card_png(character: &Character, spec: ExportSpec, avatar_png: Option<&[u8]>) -> Result<Vec<u8>> {
    let encode = |spec: ExportSpec| {
        let json = serde_json::to_vec(&character.to_value(spec)).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    };
    let mut texts = vec![(CHARA_KEYWORD, encode(ExportSpec::V2))];
    if spec == ExportSpec::V3 {
        texts.push((CCV3_KEYWORD, encode(ExportSpec::V3)));
    }
    write_png_with_texts(avatar_png, &texts, &character.name)
}
