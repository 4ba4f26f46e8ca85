//! Word-shape features from the cased text of a word. The encoder's tokenizer lowercases
//! (all-MiniLM-L6-v2 is uncased), so capitalisation, which carries much of the signal for
//! names in tweets, reaches the classifier only through these.

/// Number of shape features of one word.
pub const SHAPE_FEATURES: usize = 16;

/// Shape features of `word`; `sentence_initial` says whether it starts a sentence (a capital
/// there says little). Each feature is 0 or 1:
/// initial capital, all capitals (two letters or more), all lower case, mixed case (a capital
/// after the first letter and a lower-case letter), has a digit, number-like (digits and
/// separators only), no letter or digit (punctuation, emoji), `@` mention, `#` hashtag, link
/// (`http`, `www.`), length 1, 2–3, 4–7, 8 or more characters, sentence-initial, has a letter
/// or digit outside ASCII.
pub(crate) fn word_shape(word: &str, sentence_initial: bool) -> [f32; SHAPE_FEATURES] {
    // A mention or hashtag is cased like the name after its sign: `#Oscars` has an initial
    // capital.
    let cased = word.trim_start_matches(['@', '#']);
    let letters: Vec<char> = cased.chars().filter(|c| c.is_alphabetic()).collect();
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    let lower = letters.iter().filter(|c| c.is_lowercase()).count();
    let first_upper = cased.chars().next().is_some_and(char::is_uppercase);
    let all_caps = letters.len() >= 2 && upper == letters.len();
    let initial_capital = first_upper && !all_caps;
    let later_upper = cased.chars().skip(1).any(char::is_uppercase);
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let number_like = has_digit
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ':' | '/' | '-' | '%'));
    let mention = word.starts_with('@') && word.chars().count() > 1;
    let hashtag = word.starts_with('#') && word.chars().count() > 1;
    let lowered = word.to_lowercase();
    let link = lowered.starts_with("http") || lowered.starts_with("www.");
    let no_alphanumeric = !word.chars().any(char::is_alphanumeric);
    let length = word.chars().count();
    let non_ascii = word.chars().any(|c| c.is_alphanumeric() && !c.is_ascii());
    let flags = [
        initial_capital,
        all_caps,
        !letters.is_empty() && lower == letters.len(),
        later_upper && lower > 0,
        has_digit,
        number_like,
        no_alphanumeric,
        mention,
        hashtag,
        link,
        length <= 1,
        (2..=3).contains(&length),
        (4..=7).contains(&length),
        length >= 8,
        sentence_initial,
        non_ascii,
    ];
    flags.map(|f| if f { 1.0 } else { 0.0 })
}

/// Whether each word starts a sentence: the first word, and a word after one ending in `.`,
/// `!`, `?` or `…`.
pub(crate) fn sentence_starts<S: AsRef<str>>(words: &[S]) -> Vec<bool> {
    let mut starts = Vec::with_capacity(words.len());
    let mut next_starts = true;
    for word in words {
        starts.push(next_starts);
        next_starts = word
            .as_ref()
            .chars()
            .last()
            .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…'));
    }
    starts
}

/// The shape part of every word's features: its own shape, then the shapes of the `window`
/// words before and after it (zeros past either end of the item), so a head sees whether a
/// neighbour is capitalised.
pub(crate) fn item_shapes<S: AsRef<str>>(words: &[S], window: usize) -> Vec<Vec<f32>> {
    let starts = sentence_starts(words);
    let own: Vec<[f32; SHAPE_FEATURES]> = words
        .iter()
        .zip(&starts)
        .map(|(w, &s)| word_shape(w.as_ref(), s))
        .collect();
    (0..words.len())
        .map(|i| {
            let mut row = Vec::with_capacity(SHAPE_FEATURES * (1 + 2 * window));
            row.extend_from_slice(&own[i]);
            for offset in 1..=window {
                for neighbour in [i.checked_sub(offset), Some(i + offset)] {
                    match neighbour.and_then(|j| own.get(j)) {
                        Some(shape) => row.extend_from_slice(shape),
                        None => row.extend_from_slice(&[0.0; SHAPE_FEATURES]),
                    }
                }
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(word: &str) -> Vec<usize> {
        word_shape(word, false)
            .iter()
            .enumerate()
            .filter(|(_, &v)| v == 1.0)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn shapes_tell_capitals_digits_and_twitter_tokens_apart() {
        assert_eq!(on("London"), vec![0, 12]);
        assert_eq!(on("NASA"), vec![1, 12]);
        assert_eq!(on("the"), vec![2, 11]);
        assert_eq!(on("iPhone"), vec![3, 12]);
        assert_eq!(on("1,000"), vec![4, 5, 12]);
        assert_eq!(on("!"), vec![6, 10]);
        assert_eq!(on("@paulwalk"), vec![2, 7, 13]);
        assert_eq!(on("#Oscars"), vec![0, 8, 12]);
        assert_eq!(on("McDonald"), vec![0, 3, 13]);
        assert_eq!(on("http://t.co/x"), vec![2, 9, 13]);
        assert_eq!(on("Zürich"), vec![0, 12, 15]);
    }

    #[test]
    fn sentence_starts_follow_final_punctuation() {
        let words = ["Hi", "there", ".", "Paris", "is", "nice", "!", "Yes"];
        assert_eq!(
            sentence_starts(&words),
            [true, false, false, true, false, false, false, true]
        );
    }

    #[test]
    fn neighbour_shapes_are_zero_past_the_edges() {
        let rows = item_shapes(&["Paris", "is"], 1);
        assert_eq!(rows[0].len(), 3 * SHAPE_FEATURES);
        assert!(rows[0][SHAPE_FEATURES..2 * SHAPE_FEATURES]
            .iter()
            .all(|&v| v == 0.0));
        // The word after "Paris" is "is": all lower case.
        assert_eq!(rows[0][2 * SHAPE_FEATURES + 2], 1.0);
        // The word before "is" is "Paris": initial capital.
        assert_eq!(rows[1][SHAPE_FEATURES], 1.0);
    }
}
