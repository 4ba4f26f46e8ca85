//! `concord models export` and `concord predict --model`: a classification version written as a
//! self-contained model file (its encoder referenced by the SHA-256 of each file), and
//! pre-annotation from that file on any machine, without a database, one shard of the input at
//! a time. Each shard's part is JSONL that `concord import --labels-as model` reads; merged,
//! the parts are what one run over the whole input writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use concord_engine::{Engine, PortableModel, PortablePredictor, Principal};
use serde_json::Value;

use crate::simulate_cli::for_each_json_line;

/// Items embedded and written per batch: what is held in memory at once, whatever the input's
/// size.
const BATCH: usize = 256;

/// Part `index` of `count` (0-based, `index < count`): the k-th item of the input (0-based,
/// blank lines not counted) belongs to shard k mod `count`. Kubernetes' `JOB_COMPLETION_INDEX`
/// and a Slurm array `0-(N-1)`'s `SLURM_ARRAY_TASK_ID` number the tasks this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole input as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether the `item`-th item of the input (0-based) is this shard's.
    pub fn holds(self, item: u64) -> bool {
        item % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Reads `I/N` (`--shard`).
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (index, count) = s
        .split_once('/')
        .ok_or_else(|| format!("expected I/N, e.g. 0/4, not {s:?}"))?;
    let index: u64 = index
        .trim()
        .parse()
        .map_err(|_| format!("the shard index {index:?} is not a whole number (I/N)"))?;
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| format!("the shard count {count:?} is not a whole number (I/N)"))?;
    if count == 0 {
        return Err("the shard count must be at least 1".into());
    }
    if index >= count {
        return Err(format!(
            "shard {index}/{count} does not exist: the index counts from 0, so it must be below the count (0/{count} to {}/{count})",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// Writes version `version` of `project` to `output` (a model file) and, for a fine-tuned
/// version, its weights beside it under their SHA-256; each file is whole or absent, after a
/// crash too.
pub fn export_model(
    engine: &Engine,
    project: &str,
    version: u64,
    output: &Path,
) -> anyhow::Result<PortableModel> {
    let project = engine.find_project(project)?;
    let model = engine.export_model(&Principal::local(), project, version)?;
    let dir = parent_dir(output);
    if let Some(weights) = &model.encoder.weights {
        let target = dir.join(&weights.name);
        // Named by their hash: a file of that name with that hash is these weights already.
        let present = target.is_file()
            && concord_ml::file_sha256(&target).is_ok_and(|sha| sha == weights.sha256);
        if !present {
            let source = engine
                .fine_tuned_weights_file(&model)
                .context("the version's fine-tuned weights have no file")?;
            let mut from = std::fs::File::open(&source)
                .with_context(|| format!("opening {}", source.display()))?;
            let mut partial = tempfile::NamedTempFile::new_in(&dir)
                .with_context(|| format!("writing in {}", dir.display()))?;
            std::io::copy(&mut from, partial.as_file_mut())
                .with_context(|| format!("copying {}", source.display()))?;
            concord_engine::persist_synced(partial, &target, &dir)?;
        }
    }
    let mut partial = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    {
        let mut out = std::io::BufWriter::new(partial.as_file_mut());
        serde_json::to_writer_pretty(&mut out, &model)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    concord_engine::persist_synced(partial, output, &dir)?;
    Ok(model)
}

/// What `concord predict --model` is asked to do.
pub struct PredictOptions {
    /// The model file (`concord models export`).
    pub model: PathBuf,
    /// The models folder the encoder's files are found in.
    pub models: PathBuf,
    /// JSONL items, each with an id and a text.
    pub input: PathBuf,
    /// Where this shard's part goes.
    pub output: PathBuf,
    pub shard: Shard,
    pub text_field: String,
    pub id_field: String,
}

/// What a prediction run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictReport {
    /// The model's project and version, for the message.
    pub project: String,
    pub version: u64,
    /// Items in the whole input.
    pub items: u64,
    /// Items of this shard, each with a line in the part.
    pub predicted: u64,
}

/// Pre-annotates this shard's items of `options.input` with the model file, with no database:
/// the encoder's files are checked against the model file's SHA-256 sums first. The input is
/// read as a stream and predicted per batch; every line of it is checked (an id, a text), so
/// a bad line fails every shard alike, with its number. The part is written to a temporary
/// file and renamed into place at the end: whole, or absent.
pub fn predict(options: &PredictOptions) -> anyhow::Result<PredictReport> {
    if !options.input.is_file() {
        bail!("{} is not a file", options.input.display());
    }
    let model = PortableModel::read(&options.model)?;
    let predictor = model
        .load(Some(options.models.as_path()), &parent_dir(&options.model))
        .with_context(|| {
            format!(
                "loading the encoder of {} (models folder {})",
                options.model.display(),
                options.models.display()
            )
        })?;
    let dir = parent_dir(&options.output);
    let mut partial = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    let (mut items, mut predicted) = (0u64, 0u64);
    {
        let mut out = std::io::BufWriter::new(partial.as_file_mut());
        let mut batch: Vec<Item> = Vec::with_capacity(BATCH);
        for_each_json_line(&options.input, |line, value| {
            let item = read_item(line, value, &options.text_field, &options.id_field)?;
            let mine = options.shard.holds(items);
            items += 1;
            if mine {
                batch.push(item);
                if batch.len() >= BATCH {
                    predicted += write_batch(&predictor, &mut batch, &mut out)?;
                }
            }
            Ok(())
        })
        .with_context(|| format!("reading {}", options.input.display()))?;
        predicted += write_batch(&predictor, &mut batch, &mut out)?;
        out.flush()
            .with_context(|| format!("writing {}", options.output.display()))?;
    }
    concord_engine::persist_synced(partial, &options.output, &dir)?;
    Ok(PredictReport {
        project: model.project,
        version: model.version,
        items,
        predicted,
    })
}

/// An input item waiting for its batch.
struct Item {
    /// As the input gives it (a string or a number), written back as it was.
    id: Value,
    text: String,
    /// The input's `meta` object, kept so that the import stores it with the item.
    meta: Option<Value>,
}

/// One input line as an item; an error names the line.
fn read_item(line: usize, value: Value, text_field: &str, id_field: &str) -> anyhow::Result<Item> {
    let Value::Object(mut obj) = value else {
        bail!("line {line}: not a JSON object");
    };
    let text = match obj.remove(text_field) {
        Some(Value::String(text)) if !text.trim().is_empty() => text,
        Some(Value::String(_)) => bail!("line {line}: the text (field {text_field:?}) is empty"),
        Some(_) => bail!("line {line}: field {text_field:?} must be a string"),
        None => bail!("line {line}: no field {text_field:?} with the text (--text-field names it)"),
    };
    let id = match obj.remove(id_field) {
        Some(Value::String(id)) if !id.trim().is_empty() => Value::String(id),
        Some(Value::Number(n)) => Value::Number(n),
        Some(_) => bail!("line {line}: field {id_field:?} must be a non-empty string or a number"),
        // Parts are merged and checked by item: an item without an id could not be told apart.
        None => bail!(
            "line {line}: no field {id_field:?}: every item needs an id (--id-field names it)"
        ),
    };
    let meta = obj.remove("meta").filter(Value::is_object);
    Ok(Item { id, text, meta })
}

/// One line of a part, what `concord import --labels-as model --labels-name NAME` reads: the
/// item (id, text, its `meta`) and the model's label in the labels field the importer reads by
/// default (`gold`; with `--labels-as model` it is the model's suggestion, not a gold label),
/// with its probability as `score`, which the importer keeps as the suggestion's confidence.
#[derive(serde::Serialize)]
struct PartLine<'a> {
    id: &'a Value,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Value>,
    gold: &'a str,
    /// The f32 probability widened exactly, so that the importer reads back that very f32.
    score: f64,
}

/// Predicts `batch` and writes its lines in order; empties it. Returns how many were written.
fn write_batch(
    predictor: &PortablePredictor,
    batch: &mut Vec<Item>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let texts: Vec<&str> = batch.iter().map(|item| item.text.as_str()).collect();
    let predictions = predictor.predict(&texts)?;
    for (item, prediction) in batch.iter().zip(&predictions) {
        let line = PartLine {
            id: &item.id,
            text: &item.text,
            meta: item.meta.as_ref(),
            gold: &prediction.label,
            score: f64::from(prediction.score),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    let written = batch.len() as u64;
    batch.clear();
    Ok(written)
}

/// The folder `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_count_from_zero_below_their_count() {
        assert_eq!(parse_shard("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(parse_shard("0/1"), Ok(Shard::WHOLE));
        for bad in ["2/2", "0/0", "1", "a/2", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let shard = Shard { index: 1, count: 3 };
        let held: Vec<u64> = (0..9).filter(|&k| shard.holds(k)).collect();
        assert_eq!(held, [1, 4, 7]);
    }
}
