//! Cutting an item's pieces into windows the encoder can read, and choosing, for each word,
//! the window whose hidden states stand for it.
//!
//! An item longer than the encoder's input is read as overlapping windows that start and end
//! on word boundaries where they can. Each word is read from the window where it has the most
//! context on its nearer side (the "maximum context" rule of BERT's reading-comprehension
//! code), so no word is lost and no word is read at the very edge of a window when a more
//! central reading exists.

use std::ops::Range;

use crate::encoder::WordPieces;

/// One encoder input: special tokens around a run of an item's pieces, and the words read
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// `(word index in the item, positions of its pieces in ids)` for the words this window
    /// stands for; the positions are never empty.
    pub words: Vec<(usize, Range<usize>)>,
}

/// The windows of one item. `max_tokens` is the encoder's input limit, special tokens
/// included; windows advance by three quarters of their width, so neighbouring windows share
/// a quarter. An item with no words has no window.
pub(crate) fn windows(
    pieces: &WordPieces,
    prefix: &[u32],
    suffix: &[u32],
    max_tokens: usize,
) -> Vec<Window> {
    let n = pieces.ids.len();
    if pieces.words.is_empty() || n == 0 {
        return Vec::new();
    }
    let width = max_tokens
        .saturating_sub(prefix.len() + suffix.len())
        .max(1);
    let stride = (width - width / 4).max(1);
    // Piece index → the word it belongs to.
    let mut word_at = vec![0usize; n];
    for (w, range) in pieces.words.iter().enumerate() {
        for slot in &mut word_at[range.clone()] {
            *slot = w;
        }
    }
    let word_start = |p: usize| {
        if p >= n {
            n
        } else {
            pieces.words[word_at[p]].start
        }
    };
    let mut spans: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    loop {
        let limit = (start + width).min(n);
        // End on a word boundary when one lies inside the window; else cut (a word longer
        // than the window).
        let end = if limit == n {
            n
        } else {
            match word_start(limit) {
                b if b > start => b,
                _ => limit,
            }
        };
        spans.push(start..end);
        if end >= n {
            break;
        }
        let next = word_start((start + stride).min(end));
        start = if next > start { next } else { end };
    }
    // Per word: the window holding all its pieces with the largest margin to that window's
    // nearer edge; a word no window holds whole (longer than a window) is read from the
    // first window holding its first piece, as far as that window goes.
    let mut chosen: Vec<Option<(usize, usize)>> = vec![None; pieces.words.len()];
    for (w, range) in pieces.words.iter().enumerate() {
        // Windows advance in both start and end, so those that can hold the word are one run:
        // from the first that ends at or after it to the last that starts at or before it
        // (a few windows, not all of a 5,000-word item's).
        let first = spans.partition_point(|s| s.end < range.end);
        let last = spans.partition_point(|s| s.start <= range.start);
        for (k, span) in spans.iter().enumerate().take(last).skip(first) {
            if range.start >= span.start && range.end <= span.end {
                let margin = (range.start - span.start).min(span.end - range.end);
                if chosen[w].is_none_or(|(_, best)| margin > best) {
                    chosen[w] = Some((k, margin));
                }
            }
        }
        if chosen[w].is_none() {
            let k = spans
                .iter()
                .position(|s| s.contains(&range.start))
                .unwrap_or(0);
            chosen[w] = Some((k, 0));
        }
    }
    let mut out: Vec<Window> = spans
        .iter()
        .map(|span| {
            let mut ids = Vec::with_capacity(prefix.len() + span.len() + suffix.len());
            ids.extend_from_slice(prefix);
            ids.extend_from_slice(&pieces.ids[span.clone()]);
            ids.extend_from_slice(suffix);
            Window {
                ids,
                words: Vec::new(),
            }
        })
        .collect();
    for (w, choice) in chosen.into_iter().enumerate() {
        let Some((k, _)) = choice else { continue };
        let span = &spans[k];
        let range = &pieces.words[w];
        let from = range.start.max(span.start) - span.start + prefix.len();
        let to = range.end.min(span.end) - span.start + prefix.len();
        out[k].words.push((w, from..to.max(from + 1)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words of the given piece counts, piece ids counting up from 10.
    fn pieces(counts: &[usize]) -> WordPieces {
        let mut ids = Vec::new();
        let mut words = Vec::new();
        for &c in counts {
            let start = ids.len();
            for _ in 0..c {
                ids.push(10 + ids.len() as u32);
            }
            words.push(start..ids.len());
        }
        WordPieces { ids, words }
    }

    /// Every word is read exactly once, from pieces that are its own.
    fn check_cover(p: &WordPieces, ws: &[Window], max_tokens: usize) {
        let mut seen = vec![0; p.words.len()];
        for w in ws {
            assert!(
                w.ids.len() <= max_tokens,
                "window of {} tokens",
                w.ids.len()
            );
            assert_eq!(w.ids[0], 1);
            assert_eq!(*w.ids.last().unwrap(), 2);
            for (word, range) in &w.words {
                seen[*word] += 1;
                for pos in range.clone() {
                    let id = w.ids[pos];
                    let piece = (id - 10) as usize;
                    assert!(
                        p.words[*word].contains(&piece),
                        "word {word} read piece {piece}"
                    );
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
    }

    #[test]
    fn a_short_item_is_one_window() {
        let p = pieces(&[1, 2, 1]);
        let ws = windows(&p, &[1], &[2], 16);
        assert_eq!(ws.len(), 1);
        assert_eq!(ws[0].ids, vec![1, 10, 11, 12, 13, 2]);
        assert_eq!(ws[0].words, vec![(0, 1..2), (1, 2..4), (2, 4..5)]);
    }

    #[test]
    fn long_items_overlap_on_word_boundaries_and_read_every_word_once() {
        let counts: Vec<usize> = (0..500).map(|i| 1 + i % 3).collect();
        let p = pieces(&counts);
        let ws = windows(&p, &[1], &[2], 34);
        assert!(ws.len() > 30, "{} windows", ws.len());
        check_cover(&p, &ws, 34);
        // Words are read away from the window edges when a window offers that.
        let middle = ws[5].words.iter().all(|(_, r)| r.start > 1);
        assert!(middle, "{:?}", ws[5].words);
    }

    #[test]
    fn a_word_longer_than_a_window_is_cut_not_lost() {
        let p = pieces(&[2, 40, 3]);
        let ws = windows(&p, &[1], &[2], 12);
        check_cover(&p, &ws, 12);
    }

    #[test]
    fn no_words_no_windows() {
        assert!(windows(&pieces(&[]), &[1], &[2], 16).is_empty());
    }
}
