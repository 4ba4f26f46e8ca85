//! Benchmark: import 1,000,000 short JSONL items into a real redb file through the engine
//! (parse, validate, duplicate check, staged batches, final commit). Prints items/s and peak
//! memory. `cargo bench -p concord-tests --bench import_throughput [-- N]`

use std::io::{BufWriter, Write};
use std::time::Instant;

use concord_domain::{Label, ProjectSettings, ProjectSpec, TaskKind};
use concord_engine::{Engine, ImportFormat, ImportOptions, Principal};

fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("items.jsonl");
    {
        let mut out = BufWriter::new(std::fs::File::create(&input)?);
        for i in 0..n {
            writeln!(
                out,
                "{{\"text\":\"short item number {i} about topic {}\",\"source\":\"bench\"}}",
                i % 97
            )?;
        }
    }
    let input_bytes = std::fs::metadata(&input)?.len();
    let rss_before = concord_tests::peak_rss_bytes().unwrap_or(0);
    let engine = Engine::open(&dir.path().join("data"))?;
    let local = Principal::local();
    let spec = ProjectSpec {
        name: "bench".into(),
        task: TaskKind::Classification,
        labels: vec![Label::named("a")],
        guidelines: String::new(),
        settings: ProjectSettings::default(),
        relation_labels: Vec::new(),
    };
    let project = engine.create_project(&local, spec)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&input)?);
    let start = Instant::now();
    let report = engine.import(
        &local,
        project,
        reader,
        &ImportOptions {
            format: ImportFormat::Jsonl,
            ..Default::default()
        },
        &mut |_| {},
    )?;
    let elapsed = start.elapsed();
    assert_eq!(report.imported, n);
    let peak = concord_tests::peak_rss_bytes().unwrap_or(0);
    let db = std::fs::metadata(dir.path().join("data").join(concord_engine::DATABASE_FILE))?.len();
    println!(
        "| items | input MB | seconds | items/s | peak RSS MB (before import) | database MB |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.1} | {:.2} | {:.0} | {:.0} ({:.0}) | {:.0} |",
        input_bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        peak as f64 / 1048576.0,
        rss_before as f64 / 1048576.0,
        db as f64 / 1e6
    );
    Ok(())
}
