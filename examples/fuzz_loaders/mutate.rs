//! Random numbers and format-blind mutations: bit flips, interesting bytes and integers,
//! inserts, deletes, duplicated ranges, splices with another input, truncation.

/// SplitMix64: small, fast, and reproducible from `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6a09_e667_f3bc_c909)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// A length biased to small values (most mutations touch a few bytes).
    pub fn small_len(&mut self, max: usize) -> usize {
        let cap = match self.below(4) {
            0 => 1,
            1 => 4,
            2 => 32,
            _ => max,
        };
        1 + self.below(cap.min(max).max(1))
    }
}

/// Boundary values for counts, lengths, dims and offsets.
pub fn boundary_u64(rng: &mut Rng, old: u64) -> u64 {
    const V: &[u64] = &[
        0,
        1,
        2,
        3,
        7,
        8,
        15,
        16,
        31,
        32,
        33,
        64,
        255,
        256,
        4096,
        65535,
        65536,
        (1 << 31) - 1,
        1 << 31,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 1,
        1 << 40,
        1 << 53,
        1 << 60,
        (1 << 62) + 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];
    match rng.below(6) {
        0 => old.wrapping_add(1 + rng.below(4) as u64),
        1 => old.wrapping_sub(1 + rng.below(4) as u64),
        2 => old.wrapping_mul(2 + rng.below(31) as u64),
        3 => rng.next() >> rng.below(64),
        _ => *rng.pick(V),
    }
}

/// Write `v` little-endian as `width` bytes at `off` (clipped to the buffer).
pub fn put_le(data: &mut [u8], off: usize, width: usize, v: u64) {
    for i in 0..width {
        if let Some(b) = data.get_mut(off + i) {
            *b = (v >> (8 * i)) as u8;
        }
    }
}

pub fn get_le(data: &[u8], off: usize, width: usize) -> u64 {
    (0..width).fold(0, |acc, i| {
        acc | (*data.get(off + i).unwrap_or(&0) as u64) << (8 * i)
    })
}

/// One format-blind mutation of `data` (within `limit` bytes); `other` is a splice partner.
pub fn byte_mutation(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], limit: usize) {
    if data.is_empty() {
        data.push(rng.next() as u8);
        return;
    }
    let n = data.len();
    let at = rng.below(n);
    match rng.below(10) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'[', b'-', b'9']),
        2 => {
            let w = *rng.pick(&[2usize, 4, 8]);
            let old = get_le(data, at, w);
            put_le(data, at, w, boundary_u64(rng, old));
        }
        3 => {
            let len = rng.small_len(64);
            let fill = if rng.one_in(2) { rng.next() as u8 } else { 0 };
            let bytes: Vec<u8> = (0..len)
                .map(|_| if fill == 0 { rng.next() as u8 } else { fill })
                .collect();
            data.splice(at..at, bytes);
        }
        4 => {
            let len = rng.small_len(n - at);
            data.drain(at..at + len);
        }
        5 => {
            let len = rng.small_len(n - at);
            let chunk = data[at..at + len].to_vec();
            let to = rng.below(n);
            data.splice(to..to, chunk);
        }
        6 => {
            let len = rng.small_len(n - at);
            let to = rng.below(n);
            let chunk = data[at..at + len].to_vec();
            for (i, b) in chunk.into_iter().enumerate() {
                if let Some(x) = data.get_mut(to + i) {
                    *x = b;
                }
            }
        }
        7 if !other.is_empty() => {
            let from = rng.below(other.len());
            let len = rng.small_len(other.len() - from);
            data.splice(at..at, other[from..from + len].iter().copied());
        }
        8 if !other.is_empty() => {
            // Head of this input, tail of the other.
            let cut = rng.below(other.len());
            data.truncate(at);
            data.extend_from_slice(&other[cut..]);
        }
        _ => data.truncate(at),
    }
    data.truncate(limit);
}
