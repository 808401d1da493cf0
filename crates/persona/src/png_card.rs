//! Cards in PNG files: the card JSON, base64-encoded, in a text chunk with keyword `chara`
//! (V1/V2) or `ccv3` (V3). SillyTavern writes `tEXt` chunks just before `IEND`; `zTXt` and
//! `iTXt` are read too.
//!
//! The `png` crate's streaming decoder walks the file: it checks the signature, every chunk's
//! CRC and the chunk order, and parses the text chunks. Image data is never decompressed (a card
//! needs none of it), so a hostile image costs no memory. Export keeps the original image
//! byte for byte: every chunk of the original is copied except old card text chunks, and the
//! new ones go just before `IEND`.

use png::chunk::{self, ChunkType};
use png::text_metadata::TEXtChunk;
use png::{BitDepth, ColorType, Decoded, Encoder, Info, StreamingDecoder};

use crate::error::{CardError, Result};
use crate::limits::{MAX_CARD_JSON_BYTES, MAX_PNG_BYTES, MAX_PNG_CHUNKS, MAX_PNG_DIMENSION};

/// Keywords of the card text chunks.
pub const CHARA_KEYWORD: &str = "chara";
pub const CCV3_KEYWORD: &str = "ccv3";

const PNG_SIGNATURE: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];

pub(crate) fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(&PNG_SIGNATURE)
}

/// Where one chunk sits in the file: `[start, end)` covers length, type, data and CRC.
struct ChunkSpan {
    kind: ChunkType,
    start: usize,
    end: usize,
}

/// A walked PNG: chunk layout, header and text chunks.
pub(crate) struct PngScan {
    chunks: Vec<ChunkSpan>,
    info: Info<'static>,
    /// (keyword, text) of every text chunk, in file order by kind (tEXt, zTXt, iTXt).
    pub texts: Vec<(String, String)>,
}

fn png_error(e: impl std::fmt::Display) -> CardError {
    CardError::Png(e.to_string())
}

pub(crate) fn scan_png(bytes: &[u8]) -> Result<PngScan> {
    if bytes.len() > MAX_PNG_BYTES {
        return Err(CardError::TooLarge { what: "PNG file", size: bytes.len(), limit: MAX_PNG_BYTES });
    }
    if !is_png(bytes) {
        return Err(CardError::Png("missing PNG signature".into()));
    }
    let mut decoder = StreamingDecoder::new();
    let mut chunks = Vec::new();
    let mut pos = 0usize;
    // Each call consumes input or moves the state machine on; a bound on calls is a guard
    // against a decoder bug turning into an endless loop.
    let mut calls_left = bytes.len().saturating_mul(2).saturating_add(1024);
    loop {
        if pos >= bytes.len() {
            return Err(CardError::Png("truncated: the file ends before IEND".into()));
        }
        calls_left = calls_left.checked_sub(1).ok_or_else(|| CardError::Png("decoder made no progress".into()))?;
        let (consumed, event) = decoder.update(&bytes[pos..], None).map_err(png_error)?;
        pos += consumed;
        match event {
            Decoded::ChunkBegin(length, kind) => {
                // The decoder has just read the 8-byte length and type of this chunk.
                let start = pos.checked_sub(8).ok_or_else(|| CardError::Png("chunk before signature".into()))?;
                let header_ok = bytes.get(start..start + 4) == Some(&length.to_be_bytes()[..])
                    && bytes.get(start + 4..start + 8) == Some(&kind.0[..]);
                if !header_ok {
                    return Err(CardError::Png("chunk boundaries out of step".into()));
                }
                let end = start.saturating_add(12).saturating_add(length as usize);
                if end > bytes.len() {
                    return Err(CardError::Png(format!("truncated: chunk {kind:?} runs past the end of the file")));
                }
                if chunks.len() >= MAX_PNG_CHUNKS {
                    return Err(CardError::TooMany {
                        what: "PNG chunks",
                        count: chunks.len() + 1,
                        limit: MAX_PNG_CHUNKS,
                    });
                }
                chunks.push(ChunkSpan { kind, start, end });
            }
            Decoded::ChunkComplete(chunk::IHDR) => {
                if let Some(info) = decoder.info()
                    && (info.width > MAX_PNG_DIMENSION || info.height > MAX_PNG_DIMENSION)
                {
                    return Err(CardError::Png(format!(
                        "image is {}×{}, larger than {MAX_PNG_DIMENSION}×{MAX_PNG_DIMENSION}",
                        info.width, info.height
                    )));
                }
            }
            Decoded::ChunkComplete(chunk::IEND) => break,
            _ => {}
        }
    }
    let info = decoder.info().cloned().ok_or_else(|| CardError::Png("no IHDR".into()))?;
    let mut texts = Vec::new();
    for t in &info.uncompressed_latin1_text {
        texts.push((t.keyword.clone(), t.text.clone()));
    }
    // Compressed text is only inflated for card keywords, and only up to the card size limit.
    let limit = MAX_CARD_JSON_BYTES * 4 / 3 + 16;
    for t in &info.compressed_latin1_text {
        if is_card_keyword(&t.keyword) {
            let mut t = t.clone();
            t.decompress_text_with_limit(limit).map_err(png_error)?;
            texts.push((t.keyword.clone(), t.get_text().map_err(png_error)?));
        }
    }
    for t in &info.utf8_text {
        if is_card_keyword(&t.keyword) {
            let mut t = t.clone();
            if t.compressed {
                t.decompress_text_with_limit(limit).map_err(png_error)?;
            }
            texts.push((t.keyword.clone(), t.get_text().map_err(png_error)?));
        }
    }
    Ok(PngScan { chunks, info, texts })
}

fn is_card_keyword(keyword: &str) -> bool {
    keyword.eq_ignore_ascii_case(CHARA_KEYWORD) || keyword.eq_ignore_ascii_case(CCV3_KEYWORD)
}

/// The base64 text of the chunk with this keyword (the last one, if repeated).
pub(crate) fn card_text<'a>(scan: &'a PngScan, keyword: &str) -> Option<&'a str> {
    scan.texts.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(keyword)).map(|(_, t)| t.as_str())
}

/// A PNG with the given text chunks (keyword, text): the avatar with its old card chunks
/// replaced, or a small plain image when there is none.
pub(crate) fn write_png_with_texts(avatar: Option<&[u8]>, texts: &[(&str, String)], seed: &str) -> Result<Vec<u8>> {
    let write_err = |e: png::EncodingError| CardError::PngWrite(e.to_string());
    let mut out = Vec::new();
    match avatar {
        Some(bytes) => {
            let scan = scan_png(bytes)?;
            let mut info = Info::with_size(scan.info.width, scan.info.height);
            info.color_type = scan.info.color_type;
            info.bit_depth = scan.info.bit_depth;
            info.interlaced = scan.info.interlaced;
            let mut writer =
                Encoder::with_info(&mut out, info).map_err(write_err)?.write_header().map_err(write_err)?;
            for c in &scan.chunks {
                if c.kind == chunk::IHDR || c.kind == chunk::IEND {
                    continue;
                }
                let data = &bytes[c.start + 8..c.end - 4];
                let is_text = matches!(&c.kind.0, b"tEXt" | b"zTXt" | b"iTXt");
                if is_text {
                    let keyword = data.split(|b| *b == 0).next().unwrap_or_default();
                    if std::str::from_utf8(keyword).is_ok_and(is_card_keyword) {
                        continue;
                    }
                }
                writer.write_chunk(c.kind, data).map_err(write_err)?;
            }
            for (keyword, text) in texts {
                writer.write_text_chunk(&TEXtChunk::new(*keyword, text.clone())).map_err(write_err)?;
            }
            writer.finish().map_err(write_err)?;
        }
        None => {
            // A 64×64 square in a colour picked from the name, so cards tell apart at a glance.
            const SIZE: u32 = 64;
            let hash = seed.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
            let [r, g, b, _] = hash.to_le_bytes();
            let rgb = [96 + r / 2, 96 + g / 2, 96 + b / 2];
            let mut encoder = Encoder::new(&mut out, SIZE, SIZE);
            encoder.set_color(ColorType::Rgb);
            encoder.set_depth(BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(write_err)?;
            let pixels: Vec<u8> = std::iter::repeat_n(rgb, (SIZE * SIZE) as usize).flatten().collect();
            writer.write_image_data(&pixels).map_err(write_err)?;
            for (keyword, text) in texts {
                writer.write_text_chunk(&TEXtChunk::new(*keyword, text.clone())).map_err(write_err)?;
            }
            writer.finish().map_err(write_err)?;
        }
    }
    Ok(out)
}
