//! `concord simulate-label-errors`: plants random label flips in a labelled JSONL dataset
//! (a fixed share, fixed seed, each flipped to another class at random), runs the label-error
//! detector the engine runs (out-of-fold logistic heads on the encoder's embeddings, confident
//! learning) and prints precision@k and recall@k of the planted flips for each pruning rule
//! and ranking score, beside cleanlab's anchors measured in issue 13.
//!
//! `--split dev` keeps the items whose sha256(id) is even (where methods are chosen),
//! `--split report` the others (where they are reported), `--split all` everything. With
//! `--export DIR` it writes the embeddings, the flipped labels and the truth for
//! `scripts/bench/label_errors_cleanlab.py`, which runs cleanlab on the same numbers.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use concord_ml::{
    find_label_issues, label_quality, out_of_fold_probabilities, precision_at_k, CvHeadParams,
    DetectionMethod, Encoder, Pruning, QualityScore, SplitMix64,
};
use sha2::{Digest, Sha256};

use crate::simulate_cli::{embed_cached, for_each_json_line, string_field};

/// Which items of the dataset to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// Items whose sha256(id) is even: for choosing methods.
    Dev,
    /// Items whose sha256(id) is odd: for reporting.
    Report,
    All,
}

pub struct LabelErrorSimOptions {
    pub data: PathBuf,
    pub text_field: String,
    pub label_field: String,
    pub model: PathBuf,
    /// Share of the items whose label is flipped.
    pub flip: f64,
    pub seed: u64,
    pub split: Split,
    /// Folder of the embedding cache.
    pub cache: PathBuf,
    /// Where to write the numbers for the cleanlab script, if anywhere.
    pub export: Option<PathBuf>,
}

/// Precision@100 of cleanlab 2.9 `find_label_issues` on MiniLM embeddings, 5-fold logistic
/// regression, 10% random flips (issue 13).
const ANCHORS: &[(&str, f64)] = &[
    ("spam emails", 0.93),
    ("three-way sentiment sentences", 0.53),
];

struct Row {
    id: String,
    text: String,
    label: String,
}

fn read_rows(path: &Path, text_field: &str, label_field: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for_each_json_line(path, |line_no, v| {
        let text = string_field(&v, text_field, line_no)?;
        let label = string_field(&v, label_field, line_no)?;
        let id = match v.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => line_no.to_string(),
        };
        rows.push(Row {
            id,
            text: text.to_string(),
            label: label.to_string(),
        });
        Ok(())
    })?;
    Ok(rows)
}

/// Whether an item id falls in the development half: the first byte of its sha256 is even.
pub fn in_development_half(id: &str) -> bool {
    Sha256::digest(id.as_bytes())[0].is_multiple_of(2)
}

/// Flips `share` of `labels` (distinct items, chosen with `seed`) to another class drawn
/// uniformly; returns the noisy labels and which items were flipped.
pub fn plant_flips(
    labels: &[usize],
    classes: usize,
    share: f64,
    seed: u64,
) -> (Vec<usize>, Vec<bool>) {
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    rng.shuffle(&mut order);
    let count = (labels.len() as f64 * share).round() as usize;
    let mut noisy = labels.to_vec();
    let mut flipped = vec![false; labels.len()];
    for &i in order.iter().take(count) {
        let shift = 1 + (rng.next_u64() % (classes as u64 - 1)) as usize;
        noisy[i] = (labels[i] + shift) % classes;
        flipped[i] = true;
    }
    (noisy, flipped)
}

pub fn run(opts: &LabelErrorSimOptions) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&opts.flip) {
        bail!("--flip is a share of the items, in [0, 1)");
    }
    let all = read_rows(&opts.data, &opts.text_field, &opts.label_field)?;
    let mut names: Vec<String> = all.iter().map(|r| r.label.clone()).collect();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        bail!(
            "{}: at least two different labels are needed",
            opts.data.display()
        );
    }
    std::fs::create_dir_all(&opts.cache)
        .with_context(|| format!("cannot create {}", opts.cache.display()))?;
    let device = concord_ml::default_device();
    let encoder = Encoder::load(&opts.model, &device)
        .with_context(|| format!("loading the model from {}", opts.model.display()))?;
    let texts: Vec<String> = all.iter().map(|r| r.text.clone()).collect();
    let embeddings = embed_cached(&encoder, &texts, 32, &opts.cache)?;
    let chosen: Vec<usize> = (0..all.len())
        .filter(|&i| match opts.split {
            Split::All => true,
            Split::Dev => in_development_half(&all[i].id),
            Split::Report => !in_development_half(&all[i].id),
        })
        .collect();
    let x: Vec<Vec<f32>> = chosen.iter().map(|&i| embeddings[i].clone()).collect();
    let truth: Vec<usize> = chosen
        .iter()
        .map(|&i| names.iter().position(|n| *n == all[i].label).unwrap_or(0))
        .collect();
    let classes = names.len();
    let (noisy, flipped) = plant_flips(&truth, classes, opts.flip, opts.seed);
    let planted = flipped.iter().filter(|f| **f).count();
    let mut counts = vec![0usize; classes];
    for &t in &truth {
        counts[t] += 1;
    }
    let majority = counts.iter().copied().max().unwrap_or(0) as f64 / truth.len().max(1) as f64;
    let started = std::time::Instant::now();
    let params = CvHeadParams {
        grid: concord_engine::LABEL_ERROR_C_GRID.to_vec(),
        ..CvHeadParams::default()
    };
    let probabilities = out_of_fold_probabilities(
        &x,
        &noisy,
        classes,
        concord_engine::LABEL_ERROR_FOLDS,
        opts.seed,
        &params,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let right = probabilities
        .iter()
        .zip(&truth)
        .filter(|(p, t)| concord_ml::argmax(p) == **t)
        .count();
    println!(
        "{}: {} items ({:?} split), {} classes, majority rate {:.3}; {planted} flips planted ({:.0}%, seed {}); out-of-fold accuracy against the true labels {:.3}; {} folds × {} values of C in {seconds:.1} s",
        opts.data.display(),
        truth.len(),
        opts.split,
        classes,
        majority,
        opts.flip * 100.0,
        opts.seed,
        right as f64 / truth.len().max(1) as f64,
        concord_engine::LABEL_ERROR_FOLDS,
        params.grid.len(),
    );
    println!();
    println!("| method | flagged | P@50 | P@100 | P@200 | recall@100 | recall (all flagged) |");
    println!("|---|---|---|---|---|---|---|");
    let default = DetectionMethod::default();
    let mut methods: Vec<(String, Option<Pruning>, QualityScore)> = Vec::new();
    for pruning in [Pruning::ByNoiseRate, Pruning::ByClass, Pruning::Both] {
        for score in [QualityScore::SelfConfidence, QualityScore::NormalizedMargin] {
            let mark = if default.pruning == pruning && default.score == score {
                " (engine)"
            } else {
                ""
            };
            methods.push((
                format!("{pruning:?} + {}{mark}", score.as_str()),
                Some(pruning),
                score,
            ));
        }
    }
    for score in [QualityScore::SelfConfidence, QualityScore::NormalizedMargin] {
        methods.push((format!("every item by {}", score.as_str()), None, score));
    }
    for (name, pruning, score) in &methods {
        let quality = label_quality(&probabilities, &noisy, *score);
        let mut ranking: Vec<usize> = match pruning {
            Some(p) => {
                let mask = find_label_issues(&probabilities, &noisy, classes, *p)?;
                (0..noisy.len()).filter(|&i| mask[i]).collect()
            }
            None => (0..noisy.len()).collect(),
        };
        ranking.sort_by(|&a, &b| quality[a].total_cmp(&quality[b]).then(a.cmp(&b)));
        let at = |k| precision_at_k(&ranking, &flipped, k);
        let all_flagged = precision_at_k(&ranking, &flipped, ranking.len());
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            ranking.len(),
            at(50).precision,
            at(100).precision,
            at(200).precision,
            at(100).recall,
            all_flagged.recall,
        );
    }
    println!();
    for (what, p) in ANCHORS {
        println!("anchor (cleanlab 2.9, issue 13): {what} precision@100 {p:.2}");
    }
    if let Some(dir) = &opts.export {
        export(dir, &x, &probabilities, &truth, &noisy, &names)?;
        println!("wrote embeddings and labels to {}", dir.display());
    }
    Ok(())
}

/// Writes `embeddings.f32` and `probabilities.f32` (the out-of-fold probabilities; both
/// little-endian rows) and `labels.json` ({classes, dimension, truth, noisy}).
fn export(
    dir: &Path,
    x: &[Vec<f32>],
    probabilities: &[Vec<f32>],
    truth: &[usize],
    noisy: &[usize],
    names: &[String],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let floats = |rows: &[Vec<f32>]| -> Vec<u8> {
        rows.iter()
            .flat_map(|row| row.iter().flat_map(|v| v.to_le_bytes()))
            .collect()
    };
    let write = |name: &str, data: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(data)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write("embeddings.f32", &floats(x))?;
    write("probabilities.f32", &floats(probabilities))?;
    let labels = serde_json::json!({
        "classes": names,
        "dimension": x.first().map_or(0, Vec::len),
        "truth": truth,
        "noisy": noisy,
    });
    write("labels.json", labels.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_change_exactly_the_share_asked_for_to_another_class() {
        let labels: Vec<usize> = (0..1000).map(|i| i % 3).collect();
        let (noisy, flipped) = plant_flips(&labels, 3, 0.1, 7);
        assert_eq!(flipped.iter().filter(|f| **f).count(), 100);
        for i in 0..labels.len() {
            assert_eq!(noisy[i] != labels[i], flipped[i]);
        }
        assert_eq!(plant_flips(&labels, 3, 0.1, 7).0, noisy, "seeded");
    }

    #[test]
    fn rows_keep_their_ids_and_need_string_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"text\":\"x\",\"label\":\"spam\"}\n\n{\"id\":7,\"text\":\"y\",\"label\":\"ham\"}\n{\"text\":\"z\",\"label\":\"ham\"}\n",
        )
        .unwrap();
        let rows = read_rows(&path, "text", "label").unwrap();
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.id.as_str(), r.text.as_str(), r.label.as_str()))
            .collect();
        // Without an id, a row is named by its line number (blank lines count).
        assert_eq!(
            got,
            [("a", "x", "spam"), ("7", "y", "ham"), ("4", "z", "ham")]
        );
        std::fs::write(&path, "{\"text\":\"x\",\"label\":1}\n").unwrap();
        let err = read_rows(&path, "text", "label").err().unwrap();
        assert_eq!(err.to_string(), "line 1: no string field \"label\"");
    }

    #[test]
    fn the_development_half_is_about_half() {
        let dev = (0..1000)
            .filter(|i| in_development_half(&i.to_string()))
            .count();
        assert!((400..600).contains(&dev), "{dev}");
    }
}
