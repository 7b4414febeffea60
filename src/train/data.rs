//! Token windows for training: documents tokenized, wrapped in `<bos> … <eos>`, concatenated and
//! cut into windows of the model's length (the references' `wrap` mode, `mdlm` `dataloader.py`),
//! then visited in a seeded shuffled order, epoch after epoch.

use crate::rng::Rng;
use crate::train::objective::Batch;

/// Fixed-length windows of one split.
#[derive(Clone, Debug)]
pub struct Windows {
    tokens: Vec<u32>,
    len: usize,
}

impl Windows {
    /// Wraps each tokenized document in `bos`/`eos` (when the tokenizer has them), concatenates
    /// them and keeps the whole windows of `len` tokens (the tail is dropped).
    pub fn new(documents: &[Vec<u32>], bos: Option<u32>, eos: Option<u32>, len: usize) -> Self {
        let mut tokens = Vec::new();
        for doc in documents {
            tokens.extend(bos);
            tokens.extend_from_slice(doc);
            tokens.extend(eos);
        }
        tokens.truncate(tokens.len() / len.max(1) * len);
        Self { tokens, len }
    }

    /// [`Windows::new`] of one `split` ("train", "validation"), which must hold a whole window.
    pub fn of_split(
        documents: &[Vec<u32>],
        (bos, eos): (Option<u32>, Option<u32>),
        len: usize,
        split: &'static str,
    ) -> Result<Self, super::TrainError> {
        let w = Self::new(documents, bos, eos, len);
        if w.is_empty() {
            let tokens = documents.iter().map(Vec::len).sum();
            return Err(super::TrainError::TooLittleData { split, tokens, len });
        }
        Ok(w)
    }

    /// Windows of documents that each carry a label (`labels[i]` is document `i`'s): each run of
    /// consecutive documents of one label is cut on its own ([`Windows::new`]), so no window
    /// holds two labels' text. Answers the windows and each window's label.
    pub fn labelled(
        documents: &[Vec<u32>],
        labels: &[usize],
        (bos, eos): (Option<u32>, Option<u32>),
        len: usize,
        split: &'static str,
    ) -> Result<(Self, Vec<usize>), super::TrainError> {
        if labels.len() != documents.len() {
            return Err(super::TrainError::Config(format!(
                "{} labels for {} {split} documents",
                labels.len(),
                documents.len()
            )));
        }
        let mut tokens = Vec::new();
        let mut window_labels = Vec::new();
        let mut start = 0;
        while start < documents.len() {
            let label = labels[start];
            let end = start + labels[start..].iter().take_while(|&&l| l == label).count();
            let run = Self::new(&documents[start..end], bos, eos, len);
            window_labels.extend(std::iter::repeat_n(label, run.count()));
            tokens.extend(run.tokens);
            start = end;
        }
        let windows = Self { tokens, len };
        if windows.is_empty() {
            let tokens = documents.iter().map(Vec::len).sum();
            return Err(super::TrainError::TooLittleData { split, tokens, len });
        }
        Ok((windows, window_labels))
    }

    /// Number of windows.
    pub fn count(&self) -> usize {
        self.tokens.len() / self.len.max(1)
    }

    /// Tokens per window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is not one whole window.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Window `i`.
    pub fn window(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.len..(i + 1) * self.len]
    }

    /// The windows `indices`, as a batch.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        Batch {
            tokens: indices
                .iter()
                .flat_map(|&i| self.window(i))
                .copied()
                .collect(),
            batch: indices.len(),
            len: self.len,
        }
    }
}

/// The order windows are visited in: a fresh seeded permutation each epoch, so that the k-th
/// window of the run depends only on the seed and k (a resumed run sees what it would have seen).
#[derive(Clone, Debug)]
pub struct Order {
    seed: u64,
    count: usize,
    epoch: Option<(usize, Vec<usize>)>,
}

impl Order {
    /// An order over `count` windows.
    pub fn new(seed: u64, count: usize) -> Self {
        Self {
            seed,
            count,
            epoch: None,
        }
    }

    /// Index of the `k`-th window visited.
    pub fn nth(&mut self, k: usize) -> usize {
        let epoch = k / self.count;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut rng = Rng::new(mix(self.seed, epoch as u64));
            let mut perm: Vec<usize> = (0..self.count).collect();
            for i in (1..perm.len()).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            self.epoch = Some((epoch, perm));
        }
        self.epoch
            .as_ref()
            .map_or(0, |(_, perm)| perm[k % self.count])
    }
}

/// Combines a seed with a counter into an unrelated seed (one SplitMix64 finalisation).
pub fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_wrapped_and_cut_into_whole_windows() {
        let docs = vec![vec![10, 11, 12], vec![20, 21]];
        let w = Windows::new(&docs, Some(1), Some(2), 4);
        // <bos> 10 11 12 <eos> <bos> 20 21 <eos>: 9 tokens, two whole windows.
        assert_eq!(w.count(), 2);
        assert_eq!(w.window(0), &[1, 10, 11, 12]);
        assert_eq!(w.window(1), &[2, 1, 20, 21]);
    }

    #[test]
    fn labelled_windows_never_mix_two_labels() {
        let docs = vec![
            vec![10, 11, 12],
            vec![13, 14],
            vec![20, 21, 22, 23, 24],
            vec![30],
        ];
        let (w, labels) =
            Windows::labelled(&docs, &[0, 0, 1, 0], (None, None), 2, "train").unwrap();
        // Label 0: 10 11 | 12 13 (14 dropped); label 1: 20 21 | 22 23 (24 dropped); then 30 alone.
        assert_eq!(w.count(), 4);
        assert_eq!(labels, vec![0, 0, 1, 1]);
        assert_eq!(w.window(1), &[12, 13]);
        assert_eq!(w.window(2), &[20, 21]);
        assert!(Windows::labelled(&docs, &[0], (None, None), 2, "train").is_err());
    }

    #[test]
    fn every_epoch_visits_each_window_once_in_a_seeded_order() {
        let mut a = Order::new(5, 10);
        let mut b = Order::new(5, 10);
        let first: Vec<usize> = (0..10).map(|k| a.nth(k)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let second: Vec<usize> = (10..20).map(|k| a.nth(k)).collect();
        assert_ne!(first, second, "a new permutation each epoch");
        // Random access (a resumed run) agrees with the sequential walk.
        assert_eq!(b.nth(13), second[3]);
        assert_eq!(b.nth(2), first[2]);
    }
}
