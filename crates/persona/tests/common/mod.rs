//! Shared test helpers: fixtures, PNG cards built with the png crate, a ChatML renderer.
#![allow(dead_code)]

use base64::Engine as _;
use persona::{ChatMessage, TokenCounter};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_value(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A small RGBA PNG (a gradient, so pixel comparisons mean something) with the given text
/// chunks written after the image data, as SillyTavern does.
pub fn png_with_texts(texts: &[(&str, String)]) -> Vec<u8> {
    let (w, h) = (7u32, 5u32);
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk("Comment".into(), "made by the persona tests".into()).unwrap();
        let mut writer = enc.write_header().unwrap();
        let pixels: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
        writer.write_image_data(&pixels).unwrap();
        for (k, t) in texts {
            writer.write_text_chunk(&png::text_metadata::TEXtChunk::new(*k, t.clone())).unwrap();
        }
        writer.finish().unwrap();
    }
    out
}

/// Pixels and text chunks of a PNG, decoded with the png crate.
pub fn decode_png(bytes: &[u8]) -> (Vec<u8>, Vec<(String, String)>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    reader.finish().unwrap();
    let texts = reader.info().uncompressed_latin1_text.iter().map(|t| (t.keyword.clone(), t.text.clone())).collect();
    (buf, texts)
}

/// SmolLM2's chat template (ChatML), for checking byte prefixes as the engine would see them.
pub fn chatml(messages: &[ChatMessage]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role.as_str(), m.content));
    }
    s
}

/// One token per whitespace-separated word plus one per line break: deterministic, and close
/// enough to a real tokenizer for budget tests.
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count() + text.matches('\n').count()
    }
}

/// A `.charx` archive with the given files (deflated).
pub fn charx(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
