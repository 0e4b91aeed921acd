//! A small seeded mutator for the bounded stable-Rust run: the moves libFuzzer makes most
//! (bit flips, interesting bytes and integers, truncation, deletion, duplication, insertion,
//! splicing with another input), without coverage feedback. Deterministic for a seed.

use rand::rngs::StdRng;
use rand::Rng;

/// Bytes that steer the parsers fuzzed here: XML and HTTP delimiters, versions, extremes.
const INTERESTING_BYTES: &[u8] = &[
    0, 1, 2, 0x7f, 0x80, 0xff, b'<', b'>', b'/', b'&', b';', b'=', b'\r', b'\n', b':', b' ', b'"',
    b'0', b'f', b'%', b'?',
];

/// Little-endian integers at the boundaries of the length and count fields.
const INTERESTING_WORDS: &[u64] = &[
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    8 * 1024 * 1024,
    8 * 1024 * 1024 + 1,
    1 << 30,
    u64::MAX,
];

/// Largest input a mutation makes (libFuzzer's default `-max_len` is 4096).
pub const INPUT_BYTES_MAX: usize = 8192;

/// One mutated copy of `input`, splicing from `other` sometimes. Several moves are stacked.
pub fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let moves = rng.gen_range(1..=4);
    for _ in 0..moves {
        apply_one(rng, &mut out, other);
    }
    out.truncate(INPUT_BYTES_MAX);
    out
}

fn apply_one(rng: &mut StdRng, out: &mut Vec<u8>, other: &[u8]) {
    if out.is_empty() {
        out.push(rng.gen());
        return;
    }
    let at = rng.gen_range(0..out.len());
    match rng.gen_range(0..9) {
        0 => out[at] ^= 1 << rng.gen_range(0..8),
        1 => out[at] = INTERESTING_BYTES[rng.gen_range(0..INTERESTING_BYTES.len())],
        2 => out[at] = rng.gen(),
        3 => {
            let word = INTERESTING_WORDS[rng.gen_range(0..INTERESTING_WORDS.len())];
            let width = [1usize, 2, 4, 8][rng.gen_range(0..4)];
            let end = (at + width).min(out.len());
            out[at..end].copy_from_slice(&word.to_le_bytes()[..end - at]);
        }
        4 => out.truncate(at),
        5 => {
            let end = rng.gen_range(at..=out.len().min(at + 64));
            out.drain(at..end);
        }
        6 => {
            let end = rng.gen_range(at..=out.len().min(at + 64));
            let copy = out[at..end].to_vec();
            let to = rng.gen_range(0..=out.len());
            out.splice(to..to, copy);
        }
        7 => {
            let count = rng.gen_range(1..=8);
            let bytes: Vec<u8> = (0..count)
                .map(|_| INTERESTING_BYTES[rng.gen_range(0..INTERESTING_BYTES.len())])
                .collect();
            out.splice(at..at, bytes);
        }
        _ => {
            // Splice: this input's head, the other's tail.
            if !other.is_empty() {
                let from = rng.gen_range(0..other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
        }
    }
}
