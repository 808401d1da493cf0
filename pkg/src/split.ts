// GGUFs split in parts by llama.cpp's gguf-split: `NAME-00001-of-00003.gguf`, … Each part is a
// GGUF of its own (the first holds the metadata); the engine takes them end to end with their
// lengths and reads them as one model (crates/gguf split.rs).

const PART = /-(\d{5})-of-(\d{5})\.gguf$/;

/** Which part a file or URL name says it is (`no` from 1), or null for a whole file. */
export function splitPart(name: string): { no: number; count: number } | null {
  const match = PART.exec(name);
  if (!match) return null;
  const no = Number(match[1]);
  const count = Number(match[2]);
  return count > 1 && no >= 1 && no <= count ? { no, count } : null;
}

/** The name of part `no` (from 1) of the split that `name` is a part of. */
export function partName(name: string, no: number): string {
  return name.replace(PART, (_, _no, count: string) => `-${String(no).padStart(5, '0')}-of-${count}.gguf`);
}

/** The parts in order by their names (a File's name; Blobs keep the order given). */
export function orderParts<T extends Blob>(files: T[]): T[] {
  const named = files.map((file, i) => ({ file, no: file instanceof File ? (splitPart(file.name)?.no ?? i + 1) : i + 1 }));
  return named.sort((a, b) => a.no - b.no).map((p) => p.file);
}

/** The parts end to end in one buffer, and their lengths. */
export function joinParts(parts: Uint8Array[]): { bytes: Uint8Array; lengths: number[] } {
  const lengths = parts.map((p) => p.byteLength);
  const bytes = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.byteLength;
  }
  return { bytes, lengths };
}
