//! `.charx` files (V3): a zip archive with `card.json` at its root and assets beside it,
//! referenced from the card as `embeded://path` (the spec's spelling). The icon asset, when it
//! is a PNG, becomes the avatar, so a CHARX card exports to a PNG card with its picture.
//!
//! Reads are bounded: the archive by [`MAX_CHARX_BYTES`], `card.json` by
//! [`MAX_CARD_JSON_BYTES`] and the icon by [`MAX_PNG_BYTES`] after decompression, whatever the
//! archive claims, so a zip bomb inflates no further than the limit.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use crate::card::Character;
use crate::card_io::ImportedCard;
use crate::error::{CardError, Result};
use crate::limits::{MAX_CARD_JSON_BYTES, MAX_CHARX_BYTES, MAX_CHARX_FILES, MAX_PNG_BYTES};
use crate::png_card::is_png;

pub(crate) fn import_card_charx(bytes: &[u8]) -> Result<ImportedCard> {
    if bytes.len() > MAX_CHARX_BYTES {
        return Err(CardError::TooLarge { what: "CHARX file", size: bytes.len(), limit: MAX_CHARX_BYTES });
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(charx_error)?;
    if archive.len() > MAX_CHARX_FILES {
        return Err(CardError::TooMany {
            what: "files in a CHARX archive",
            count: archive.len(),
            limit: MAX_CHARX_FILES,
        });
    }
    let json = read_file(&mut archive, "card.json", "card.json", MAX_CARD_JSON_BYTES)?
        .ok_or_else(|| CardError::NotACard("the CHARX archive has no card.json".into()))?;
    let (character, spec) = Character::from_json_bytes(&json)?;
    let avatar_png = match icon_path(&character) {
        Some(path) => read_file(&mut archive, &path, "CHARX icon", MAX_PNG_BYTES)?.filter(|b| is_png(b)),
        None => None,
    };
    Ok(ImportedCard { character, spec, avatar_png })
}

fn charx_error(e: ZipError) -> CardError {
    CardError::Charx(e.to_string())
}

/// The archive path of the main icon: an `icon` asset named `main`, else the first icon.
fn icon_path(character: &Character) -> Option<String> {
    let assets = character.assets.as_ref()?;
    let icons = || assets.iter().filter(|a| a.kind == "icon");
    let icon = icons().find(|a| a.name == "main").or_else(|| icons().next())?;
    let path = icon.uri.strip_prefix("embeded://").or_else(|| icon.uri.strip_prefix("embedded://"))?;
    Some(path.trim_start_matches('/').to_owned())
}

fn read_file(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    what: &'static str,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
    let file = match archive.by_name(name) {
        Ok(f) => f,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(charx_error(e)),
    };
    let mut out = Vec::new();
    // One byte past the limit tells "too large" from "exactly at the limit".
    file.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| CardError::Charx(e.to_string()))?;
    if out.len() > limit {
        return Err(CardError::TooLarge { what, size: out.len(), limit });
    }
    Ok(Some(out))
}
