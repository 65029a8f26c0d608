//! Counting interacting pairs inside a set of medications (the DDI rate's numerator and denominator).

use crate::data::ddi::DdiPairs;
use crate::data::vocab::Vocab;
use crate::eval::metrics::Threshold;

/// A medication set as a bitset over the vocabulary's medication indices.
#[derive(Debug, Clone, PartialEq)]
pub struct MedSet {
    words: Vec<u64>,
}

impl MedSet {
    pub fn new(num_medications: usize) -> Self {
        Self { words: vec![0; num_medications.div_ceil(64)] }
    }

    /// The medications `threshold` predicts from `probs`, built a word at a time without a branch
    /// per medication (a branch mispredicted on most predicted drugs).
    pub fn predicted(probs: &[f32], threshold: Threshold) -> Self {
        let word =
            |chunk: &[f32]| chunk.iter().enumerate().fold(0u64, |w, (b, &p)| w | (threshold.predicts(p) as u64) << b);
        Self { words: probs.chunks(64).map(word).collect() }
    }

    pub fn insert(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }

    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(k, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    k * 64 + bit
                })
            })
        })
    }
}

/// Pair counts of one medication set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairCounts {
    /// Unordered pairs {a, b}, a ≠ b: k·(k−1)/2 for k medications.
    pub pairs: u64,
    /// Those pairs that interact.
    pub interacting: u64,
}

/// The DDI adjacency as one bitset row per medication, so a set's interacting pairs cost
/// O(|set|·M/64) word operations instead of O(|set|²) lookups.
#[derive(Debug, Clone)]
pub struct DdiCounter {
    rows: Vec<MedSet>,
}

impl DdiCounter {
    /// The reference counts a pair when `A[a,b] == 1 or A[b,a] == 1`; the adjacency is symmetric
    /// with an empty diagonal, so each pair is counted once.
    pub fn new(ddi: &DdiPairs, vocab: &Vocab) -> Self {
        Self::from_adjacency(&ddi.adjacency(vocab), vocab.num_medications())
    }

    /// From a symmetric M×M adjacency (row-major) with an empty diagonal.
    pub fn from_adjacency(adjacency: &[bool], m: usize) -> Self {
        let rows = (0..m)
            .map(|a| {
                let mut row = MedSet::new(m);
                (0..m).filter(|&b| adjacency[a * m + b]).for_each(|b| row.insert(b));
                row
            })
            .collect();
        Self { rows }
    }

    pub fn count(&self, set: &MedSet) -> PairCounts {
        let k = set.len() as u64;
        let ordered: u64 = set
            .indices()
            .map(|a| self.rows[a].words.iter().zip(&set.words).map(|(r, s)| (r & s).count_ones() as u64).sum::<u64>())
            .sum();
        PairCounts { pairs: k * k.saturating_sub(1) / 2, interacting: ordered / 2 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicted_set_holds_exactly_the_drugs_over_the_threshold() {
        // 150 medications: two full words and a partial one; scores on, just above and off the threshold.
        let above = f32::from_bits(0.3f32.to_bits() + 1);
        let probs: Vec<f32> = (0..150).map(|i| [0.1, 0.3, above, 0.9, 0.0][i % 5]).collect();
        for inclusive in [false, true] {
            let threshold = Threshold { value: 0.3, inclusive };
            let mut want = MedSet::new(150);
            for (i, &p) in probs.iter().enumerate() {
                let over = if inclusive { p >= 0.3 } else { p > 0.3 };
                if over {
                    want.insert(i);
                }
            }
            let got = MedSet::predicted(&probs, threshold);
            assert_eq!(got, want, "inclusive = {inclusive}");
            assert_eq!(got.len(), if inclusive { 90 } else { 60 });
        }
    }
}
