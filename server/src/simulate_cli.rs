//! `concord simulate`: replays a labelled JSONL dataset through the model loop (zero-shot, then
//! rounds of labels picked by each active-learning strategy) and reports accuracy and macro-F1
//! per round as a table, a CSV file and an SVG chart; with `--auto-loop`, replays the loop
//! that trains itself instead (see [`concord_ml::simulate_auto_loop`]).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use concord_ml::{
    label_prompt, simulate, simulate_auto_loop, AutoLoopReport, AutoLoopSettings, Calibration,
    CvHeadParams, Encoder, HeadParams, SimulationInput, SimulationReport, Strategy, StrategyRun,
};
use sha2::{Digest, Sha256};

/// A labelled dataset read from JSONL.
pub struct Dataset {
    pub texts: Vec<String>,
    pub labels: Vec<String>,
    pub gold: Vec<usize>,
}

/// Hands `each` every non-empty line of the JSONL file `path`, parsed, with its 1-based line
/// number; stops at the first line that is not UTF-8 or not JSON, or that `each` refuses.
pub(crate) fn for_each_json_line(
    path: &Path,
    mut each: impl FnMut(usize, serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = n + 1;
        let line = line.with_context(|| format!("line {line_no}: not UTF-8 text"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("line {line_no}: not a JSON object"))?;
        each(line_no, v)?;
    }
    Ok(())
}

/// The string `field` of the JSON line numbered `line_no`; an error names the line.
pub(crate) fn string_field<'a>(
    v: &'a serde_json::Value,
    field: &str,
    line_no: usize,
) -> anyhow::Result<&'a str> {
    match v.get(field).and_then(|t| t.as_str()) {
        Some(s) => Ok(s),
        None => bail!("line {line_no}: no string field {field:?}"),
    }
}

/// Reads `{text_field: "...", label_field: "..."}` lines; labels are sorted by name.
pub fn read_dataset(path: &Path, text_field: &str, label_field: &str) -> anyhow::Result<Dataset> {
    let mut texts = Vec::new();
    let mut names = Vec::new();
    for_each_json_line(path, |line_no, v| {
        let text = string_field(&v, text_field, line_no)?;
        let label = match v.get(label_field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(x)) => x.to_string(),
            Some(serde_json::Value::Bool(b)) => b.to_string(),
            _ => bail!("line {line_no}: no label field {label_field:?}"),
        };
        texts.push(text.to_string());
        names.push(label);
        Ok(())
    })?;
    let labels: Vec<String> = names
        .iter()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 {
        bail!(
            "{}: at least two different labels are needed",
            path.display()
        );
    }
    let index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let gold = names.iter().map(|n| index[n.as_str()]).collect();
    Ok(Dataset {
        texts,
        labels,
        gold,
    })
}

/// Embeddings of the dataset's texts, cached in `cache_dir` under the model's fingerprint and
/// the texts' hash, so a rerun skips the encoder.
pub fn embed_cached(
    encoder: &Encoder,
    texts: &[String],
    batch_size: usize,
    cache_dir: &Path,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut hasher = Sha256::new();
    for t in texts {
        hasher.update(t.as_bytes());
        hasher.update([0]);
    }
    let key = hex::encode(&hasher.finalize()[..8]);
    let path = cache_dir.join(format!("embeddings-{}-{key}.f32", encoder.fingerprint()));
    let dim = encoder.dimension();
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == texts.len() * dim * 4 {
            let floats: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return Ok(floats.chunks(dim).map(<[f32]>::to_vec).collect());
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = indicatif::ProgressBar::new(texts.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "embedding {bar:40} {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let out = encoder
        .embed(&refs, batch_size, &mut |done| bar.set_position(done as u64))
        .context("embedding the dataset")?;
    bar.finish_and_clear();
    let mut bytes = Vec::with_capacity(texts.len() * dim * 4);
    for row in &out {
        for x in row {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(out)
}

pub struct SimulateOptions {
    pub data: PathBuf,
    pub text_field: String,
    pub label_field: String,
    pub model: PathBuf,
    pub descriptions: Vec<(String, String)>,
    pub round_size: usize,
    pub rounds: usize,
    pub out: PathBuf,
    pub seed: u64,
    pub head: HeadParams,
    /// Replay the loop that trains itself instead of the strategies.
    pub auto_loop: Option<AutoLoopOptions>,
}

/// `concord simulate --auto-loop`: how often the replayed loop retrains and where it is
/// measured.
pub struct AutoLoopOptions {
    pub every: usize,
    pub checkpoints: Vec<usize>,
    /// Few-shot milestones, replayed by tuning a fresh copy of the encoder.
    pub few_shot_at: Vec<usize>,
}

pub fn run(opts: &SimulateOptions) -> anyhow::Result<()> {
    let data = read_dataset(&opts.data, &opts.text_field, &opts.label_field)?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let device = concord_ml::default_device();
    let encoder = Encoder::load(&opts.model, &device)
        .with_context(|| format!("loading the model from {}", opts.model.display()))?;
    let started = std::time::Instant::now();
    let embeddings = embed_cached(&encoder, &data.texts, 32, &opts.out)?;
    eprintln!(
        "embedded {} items in {:.1} s",
        data.texts.len(),
        started.elapsed().as_secs_f64()
    );
    let prompts: Vec<String> = data
        .labels
        .iter()
        .map(|l| {
            let description = opts
                .descriptions
                .iter()
                .find(|(n, _)| n == l)
                .map(|(_, d)| d.as_str());
            label_prompt(l, description)
        })
        .collect();
    let prompt_refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let label_embeddings = encoder.embed(&prompt_refs, 8, &mut |_| {})?;
    if let Some(auto) = &opts.auto_loop {
        return run_auto_loop(opts, auto, &data, &embeddings, &label_embeddings);
    }
    let runs = [
        StrategyRun {
            strategy: Strategy::Random,
            diversity: false,
        },
        StrategyRun {
            strategy: Strategy::Margin,
            diversity: false,
        },
        StrategyRun {
            strategy: Strategy::Entropy,
            diversity: false,
        },
        StrategyRun {
            strategy: Strategy::LeastConfidence,
            diversity: false,
        },
        StrategyRun {
            strategy: Strategy::Margin,
            diversity: true,
        },
        StrategyRun {
            strategy: Strategy::Random,
            diversity: true,
        },
    ];
    let input = SimulationInput {
        embeddings: &embeddings,
        gold: &data.gold,
        labels: &data.labels,
        label_embeddings: &label_embeddings,
        round_size: opts.round_size,
        rounds: opts.rounds,
        test_fraction: 0.3,
        seed: opts.seed,
    };
    let report = simulate(&input, &runs, &opts.head, &device, &mut |m| {
        eprintln!("{m}")
    })?;
    let table = format_report(&report, &runs, &data.labels, &prompts);
    println!("{table}");
    std::fs::write(opts.out.join("simulation.md"), &table)?;
    std::fs::write(opts.out.join("simulation.csv"), csv(&report)?)?;
    std::fs::write(opts.out.join("simulation.svg"), svg(&report, &runs))?;
    eprintln!(
        "wrote simulation.md, simulation.csv and simulation.svg to {}",
        opts.out.display()
    );
    Ok(())
}

/// Replays the loop that trains itself and prints the active version's test accuracy at each
/// checkpoint beside the majority rate and a head on as many random labels; writes
/// `auto_loop.md` and `auto_loop.json` to the output folder.
fn run_auto_loop(
    opts: &SimulateOptions,
    auto: &AutoLoopOptions,
    data: &Dataset,
    embeddings: &[Vec<f32>],
    label_embeddings: &[Vec<f32>],
) -> anyhow::Result<()> {
    let input = SimulationInput {
        embeddings,
        gold: &data.gold,
        labels: &data.labels,
        label_embeddings,
        round_size: auto.every,
        rounds: 0,
        test_fraction: 0.3,
        seed: opts.seed,
    };
    let settings = AutoLoopSettings {
        every: auto.every,
        checkpoints: auto.checkpoints.clone(),
        // The engine's minimum for a first training.
        minimum: 10,
        head: CvHeadParams::default(),
        few_shot_at: auto.few_shot_at.clone(),
    };
    // As the engine's `setfit` trainer: a fresh copy of the encoder tuned on the training
    // labels with the default settings, then every item re-embedded with it.
    let classes = data.labels.len();
    let mut tune = |train: &[usize]| -> Result<Vec<Vec<f32>>, concord_ml::MlError> {
        let started = std::time::Instant::now();
        let fresh = Encoder::load(&opts.model, &concord_ml::default_device())?;
        let texts: Vec<&str> = train.iter().map(|&i| data.texts[i].as_str()).collect();
        let y: Vec<usize> = train.iter().map(|&i| data.gold[i]).collect();
        let outcome = concord_ml::setfit(
            &fresh,
            &texts,
            &y,
            classes,
            &concord_ml::SetFitParams::default(),
            &mut |_, _| std::ops::ControlFlow::Continue(()),
        )?;
        let all: Vec<&str> = data.texts.iter().map(String::as_str).collect();
        let x = fresh.embed(&all, 32, &mut |_| {})?;
        eprintln!(
            "few-shot tuning on {} labels and re-embedding {} items: {:.1} s",
            train.len(),
            all.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(outcome.head.predict(&x))
    };
    let started = std::time::Instant::now();
    let report = simulate_auto_loop(&input, &settings, Some(&mut tune), &mut |m| {
        eprintln!("{m}")
    })?;
    eprintln!(
        "auto loop replayed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let table = format_auto_loop(&report, &opts.data);
    println!("{table}");
    std::fs::write(opts.out.join("auto_loop.md"), &table)?;
    std::fs::write(
        opts.out.join("auto_loop.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    eprintln!(
        "wrote auto_loop.md and auto_loop.json to {}",
        opts.out.display()
    );
    Ok(())
}

fn format_auto_loop(report: &AutoLoopReport, data: &Path) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "Auto loop on {}: pool {}, test {} (never read by the loop), retrain every {} labels",
        data.display(),
        report.pool,
        report.test,
        report.every
    ));
    line(String::new());
    line(format!(
        "majority rate {:.3}; zero-shot (where the loop starts) {:.3}",
        report.majority_accuracy, report.zero_shot.accuracy
    ));
    line(String::new());
    line("| labels | loop accuracy | loop macro-F1 | majority | active trained at | trainings (not activated) | random labels, one head |".into());
    line("|---|---|---|---|---|---|---|".into());
    for p in &report.points {
        line(format!(
            "| {} | {:.3} | {:.3} | {:.3} | {} | {} ({}) | {:.3} |",
            p.labels,
            p.accuracy,
            p.macro_f1,
            report.majority_accuracy,
            match p.active_trained_at {
                None => "zero-shot".to_string(),
                Some(n) if p.active_few_shot => format!("{n} (few-shot)"),
                Some(n) => n.to_string(),
            },
            p.trainings,
            p.not_activated,
            p.random_labels.accuracy
        ));
    }
    out
}

fn format_report(
    report: &SimulationReport,
    runs: &[StrategyRun],
    labels: &[String],
    prompts: &[String],
) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "{} labels ({}), pool {} items, held-out test {} items (stratified, 30%)",
        labels.len(),
        prompts.join(" | "),
        report.pool,
        report.test
    ));
    line(String::new());
    line("| baseline | accuracy | macro-F1 |".into());
    line("|---|---|---|".into());
    line(format!(
        "| majority class | {:.3} | – |",
        report.majority_accuracy
    ));
    for (cal, e) in &report.zero_shot {
        let name = match cal {
            Calibration::None => "zero-shot, raw cosine",
            Calibration::Centre => "zero-shot, centred per label",
            Calibration::Standardize => "zero-shot, standardised per label",
        };
        line(format!(
            "| {name} | {:.3} | {:.3} |",
            e.accuracy, e.macro_f1
        ));
    }
    line(format!(
        "| zero-shot, standardised, label priors re-estimated (EM) | {:.3} | {:.3} |",
        report.zero_shot_priors.accuracy, report.zero_shot_priors.macro_f1
    ));
    line(format!(
        "| zero-shot, self-trained head on its surest 30% | {:.3} | {:.3} |",
        report.zero_shot_self_trained.accuracy, report.zero_shot_self_trained.macro_f1
    ));
    let shipped = concord_ml::COLD_START;
    line(format!(
        "| zero-shot as the engine ships it ({} prompts, calibration {:?}, priors {}) (used) | {:.3} | {:.3} |",
        shipped.prompts.as_str(),
        shipped.calibration,
        shipped.priors.name(),
        report.zero_shot_shipped.accuracy,
        report.zero_shot_shipped.macro_f1
    ));
    line(format!(
        "| head on all {} pool labels | {:.3} | {:.3} |",
        report.pool, report.all_labels.accuracy, report.all_labels.macro_f1
    ));
    line(String::new());
    let mut header = "| labels |".to_string();
    let mut rule = "|---|".to_string();
    for r in runs {
        header.push_str(&format!(" {} |", r.name()));
        rule.push_str("---|");
    }
    line(format!("{header}  (accuracy / macro-F1)"));
    line(rule);
    let mut by_labels: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for r in runs {
        for row in report.rounds.iter().filter(|x| x.strategy == r.name()) {
            by_labels
                .entry(row.labels)
                .or_insert_with(|| vec!["–".to_string(); runs.len()])
                [runs.iter().position(|x| x == r).unwrap_or(0)] =
                format!("{:.3} / {:.3}", row.accuracy, row.macro_f1);
        }
    }
    for (n, cells) in by_labels {
        line(format!("| {n} | {} |", cells.join(" | ")));
    }
    let target = 0.95 * report.all_labels.accuracy;
    line(String::new());
    for r in runs {
        let reached = report
            .rounds
            .iter()
            .filter(|x| x.strategy == r.name())
            .find(|x| x.accuracy >= target)
            .map(|x| x.labels.to_string())
            .unwrap_or_else(|| "not within the rounds".into());
        line(format!(
            "95% of the all-labels accuracy ({target:.3}) with {}: {reached}",
            r.name()
        ));
    }
    out
}

fn csv(report: &SimulationReport) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["strategy", "round", "labels", "accuracy", "macro_f1"])?;
    w.write_record([
        "majority",
        "0",
        "0",
        &report.majority_accuracy.to_string(),
        "",
    ])?;
    for (cal, e) in &report.zero_shot {
        let name = format!(
            "zero_shot_{}",
            serde_json::to_value(cal)?.as_str().unwrap_or("")
        );
        w.write_record([
            name.as_str(),
            "0",
            "0",
            &e.accuracy.to_string(),
            &e.macro_f1.to_string(),
        ])?;
    }
    for (name, e) in [
        ("zero_shot_priors", &report.zero_shot_priors),
        ("zero_shot_self_trained", &report.zero_shot_self_trained),
        ("zero_shot_shipped", &report.zero_shot_shipped),
    ] {
        w.write_record([
            name,
            "0",
            "0",
            &e.accuracy.to_string(),
            &e.macro_f1.to_string(),
        ])?;
    }
    w.write_record([
        "all_labels",
        "0",
        &report.pool.to_string(),
        &report.all_labels.accuracy.to_string(),
        &report.all_labels.macro_f1.to_string(),
    ])?;
    for r in &report.rounds {
        w.write_record([
            r.strategy.as_str(),
            &r.round.to_string(),
            &r.labels.to_string(),
            &r.accuracy.to_string(),
            &r.macro_f1.to_string(),
        ])?;
    }
    Ok(w.into_inner()?)
}

const COLOURS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b07aa1",
];

/// Accuracy against labels used, one line per strategy, with the baselines as dashed lines.
fn svg(report: &SimulationReport, runs: &[StrategyRun]) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 420.0, 60.0, 50.0, 20.0, 200.0);
    let max_labels = report
        .rounds
        .iter()
        .map(|r| r.labels)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut lows: Vec<f64> = report.rounds.iter().map(|r| r.accuracy).collect();
    lows.push(report.majority_accuracy);
    lows.extend(report.zero_shot.iter().map(|(_, e)| e.accuracy));
    let y_min = (lows.iter().copied().fold(1.0, f64::min) * 10.0).floor() / 10.0;
    let y_max = 1.0;
    let x = |labels: f64| left + labels / max_labels * (w - left - right);
    let y = |acc: f64| top + (y_max - acc) / (y_max - y_min).max(1e-9) * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let mut tick = y_min;
    while tick <= y_max + 1e-9 {
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{label_y:.1}\" text-anchor=\"end\">{tick:.1}</text>\n",
            x2 = w - right,
            ty = y(tick),
            tx = left - 6.0,
            label_y = y(tick) + 4.0
        ));
        tick += 0.1;
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">labels used ({} per round)</text>\n\
         <text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">held-out accuracy</text>\n",
        (left + w - right) / 2.0,
        h - 12.0,
        report.rounds.first().map_or(0, |r| r.labels),
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    ));
    let zs = report.zero_shot_shipped.accuracy;
    for (name, value) in [
        ("all labels", report.all_labels.accuracy),
        ("95% of all labels", 0.95 * report.all_labels.accuracy),
        ("zero-shot", zs),
        ("majority class", report.majority_accuracy),
    ] {
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"{tx}\" y=\"{label_y:.1}\" fill=\"#555\">{name} {value:.3}</text>\n",
            x2 = w - right,
            ly = y(value),
            tx = w - right + 6.0,
            label_y = y(value) + 4.0
        ));
    }
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = report
            .rounds
            .iter()
            .filter(|x| x.strategy == r.name())
            .map(|row| format!("{:.1},{:.1}", x(row.labels as f64), y(row.accuracy)))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        ));
        s.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            w - right + 6.0,
            h - bottom - 14.0 * (runs.len() - i) as f64,
            w - right + 20.0,
            h - bottom - 14.0 * (runs.len() - i) as f64 + 9.0,
            r.name()
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"text\":\"a\",\"label\":\"x\"}\n\n{\"text\":\"b\"}\n",
        )
        .unwrap();
        let err = read_dataset(&path, "text", "label").err().unwrap();
        assert_eq!(err.to_string(), "line 3: no label field \"label\"");
        std::fs::write(&path, "{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"}\n{\"text\":\"c\",\"label\":\"x\"}\n").unwrap();
        let d = read_dataset(&path, "text", "label").unwrap();
        assert_eq!(d.labels, ["x", "y"]);
        assert_eq!(d.gold, [0, 1, 0]);
    }
}
