//! Byte-level mutations in the style of AFL's "havoc" stage: a random stack of small edits,
//! plus splicing from another corpus input.

use rand::rngs::StdRng;
use rand::Rng;

/// Inputs are cut back to this size after mutation, so that repeats cannot grow them forever.
pub const MAX_LEN: usize = 1 << 20;

/// Bytes that sit on parser boundaries (JSON and protobuf) or are invalid UTF-8.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xc0, 0xe0, 0xf0, 0xf8, 0xff, b'"', b'\\', b'{', b'}', b'[', b']',
    b',', b':', b'\n', b'\r', b' ', b'-', b'0', b'9', b'e',
];

/// Applies 1 to 8 random edits to `input`; `other` is spliced in by some of them.
pub fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, dictionary: &[&[u8]], other: &[u8]) {
    for _ in 0..rng.gen_range(1..=8) {
        edit(rng, input, dictionary, other);
    }
    input.truncate(MAX_LEN);
}

fn edit(rng: &mut StdRng, input: &mut Vec<u8>, dictionary: &[&[u8]], other: &[u8]) {
    let len = input.len();
    let at = |rng: &mut StdRng| rng.gen_range(0..=len);
    match rng.gen_range(0..9) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            input[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
        }
        2 if !dictionary.is_empty() => {
            let word = dictionary[rng.gen_range(0..dictionary.len())];
            let i = at(rng);
            input.splice(i..i, word.iter().copied());
        }
        3 if len > 0 => {
            let start = rng.gen_range(0..len);
            let end = (start + rng.gen_range(1..=16)).min(len);
            input.drain(start..end);
        }
        4 if len > 0 => {
            // Repeat a short range: long runs of one structure (nesting, many fields).
            let start = rng.gen_range(0..len);
            let end = (start + rng.gen_range(1..=32)).min(len);
            let chunk = input[start..end].repeat(rng.gen_range(1..=64));
            input.splice(start..start, chunk);
        }
        5 if !other.is_empty() => {
            let from = rng.gen_range(0..other.len());
            let to = rng.gen_range(from..=other.len());
            let i = at(rng);
            input.splice(i..i, other[from..to].iter().copied());
        }
        6 => input.truncate(at(rng)),
        7 => {
            let i = at(rng);
            let bytes: Vec<u8> = (0..rng.gen_range(1..=8)).map(|_| rng.gen()).collect();
            input.splice(i..i, bytes);
        }
        _ if len > 1 => {
            let (a, b) = (rng.gen_range(0..len), rng.gen_range(0..len));
            input.swap(a, b);
        }
        _ => input.push(rng.gen()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        let mut rng = StdRng::seed_from_u64(7);
        let seed = b"{\"id\": \"a\", \"text\": \"b\"}".to_vec();
        let mut changed = 0;
        for _ in 0..1000 {
            let mut input = seed.clone();
            mutate(&mut rng, &mut input, &[b"\"language\""], b"other");
            changed += usize::from(input != seed);
            assert!(input.len() <= MAX_LEN);
        }
        assert!(
            changed > 950,
            "only {changed} of 1000 mutations changed the input"
        );
    }
}
