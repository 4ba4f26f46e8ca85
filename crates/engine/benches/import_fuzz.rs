//! Fuzzes every import format (JSONL, CSV, text) for a fixed time through the engine's real
//! import path: an engine over a temp data dir (a real redb file), one project with items in
//! it, and [`Engine::import`] fed seeded, structure-aware mutations of valid files (bit flips,
//! truncation, spliced and duplicated lines, invalid UTF-8, huge fields, quotes, BOMs, CRLF and
//! lone CR, NULs, deep JSON nesting, duplicate ids, unknown labels and annotators).
//!
//! For every input it checks that nothing panicked (on any thread: the staging thread's panics
//! are counted through the panic hook), that a rejected input fails with an import error naming
//! a line of the input (1 ..= its line count), and that a rejected import left the project with
//! exactly the items it had (its export is byte-for-byte the same). It prints the inputs tried
//! per format, the errors by kind, the panics and the inputs per second, writes every failing
//! input to the temp dir, and exits non-zero if any check failed.
//!
//! `cargo test -p concord-engine --bench import_fuzz -- --seconds 60 [--seed N]` runs it in the
//! dev profile (a release build of the workspace is not needed for this); `cargo bench` works
//! too.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use concord_engine::agreement_stats::rng::SplitMix64;
use concord_engine::domain::{Label, ProjectId, ProjectSettings, ProjectSpec, TaskKind};
use concord_engine::{Engine, EngineError, ExportFormat, ImportFormat, ImportOptions, Principal};

const ADMIN: &str = "admin";
const PASSWORD: &str = "fuzzing password";
/// The account named by the seeds' answers (JSONL `annotations`, CSV `ann:ann1`).
const ANNOTATOR: &str = "ann1";
const LABELS: [&str; 3] = ["pos", "neg", "neu"];
/// What every fresh project holds before the fuzzed import: a rejected import must leave it
/// exactly so, and `base-1` is the id the duplicate-id mutation reuses.
const BASE_ITEMS: &str = "{\"id\":\"base-1\",\"text\":\"already here\",\"gold\":\"pos\"}\n\
                          {\"id\":\"base-2\",\"text\":\"also here\",\"meta\":{\"k\":1}}\n";
/// One line longer than the import accepts (`MAX_LINE_BYTES` in `import/parse.rs`, 4 MiB).
const OVER_LINE_LIMIT: usize = 4 * 1024 * 1024 + 1;

const JSONL_SEEDS: &[&str] = &[
    "{\"id\":\"j1\",\"text\":\"Great \\\"film\\\", really\",\"gold\":\"pos\",\"meta\":{\"src\":\"web\"}}\n\
     {\"id\":\"j2\",\"text\":\"=1+1 \u{1F600} line\\nbreak\",\"annotations\":[{\"annotator\":\"ann1\",\"labels\":[\"neg\"]}]}\n\
     {\"id\":7,\"text\":\"numeric id\",\"gold\":[\"neu\"],\"extra\":true}\n\
     \n\
     {\"text\":\"no id at all\"}\n",
    // As Concord's export writes it: derived fields, answer times and source.
    "{\"id\":\"e1\",\"text\":\"exported\",\"meta\":{},\"gold\":\"neg\",\"gold_source\":\"import\",\"gold_question\":false,\
     \"annotations\":[{\"annotator\":\"ann1\",\"labels\":[\"neg\"],\"source\":{\"kind\":\"human\"},\"created_ms\":1,\"updated_ms\":2,\"time_spent_ms\":3}],\
     \"aggregate\":{\"status\":\"agreed\",\"labels\":[\"neg\"]},\"suggestion\":null}\r\n\
     {\"id\":\"e2\",\"text\":\"@cmd 'quoted'\",\"meta\":{\"a\":[1,2,{\"b\":null}]},\"gold\":null}\r\n",
];

const CSV_SEEDS: &[&str] = &[
    "id,text,gold,meta,ann:ann1\n\
     c1,\"He said \"\"hi\"\"\non two lines\",pos,\"{\"\"k\"\":1}\",neg\n\
     c2,'=SUM(A1),,,|\n\
     c3,plain \u{e9}t\u{e9},neu,,\n",
    // An export's header with derived columns, CRLF, and an extra column kept as metadata.
    "id,text,gold,gold_source,gold_question,meta,ann:ann1,aggregate,aggregate_status,suggestion,suggestion_confidence,suggestion_version,source\r\n\
     x1,first,pos,import,false,,pos,pos,agreed,,,,feed\r\n\
     x2,\"a, comma\",,,,,,,none,neg,0.5,3,\r\n",
];

const TEXT_SEEDS: &[&str] = &[
    "first line\nsecond \u{1F600} line\n\nthird, with \"quotes\"\n",
    "\u{feff}bom first\r\nwindows line\r\n   \r\nlast without newline",
];

/// The ids in the seeds, any of which the duplicate-id mutation replaces with `base-1`.
const SEED_IDS: &[&str] = &["j1", "j2", "e1", "e2", "c1", "c2", "c3", "x1", "x2"];

/// Fragments inserted at random places: the syntax each format is made of, and values that
/// are valid somewhere else.
const TOKENS: &[&str] = &[
    ",",
    "\"",
    "\"\"",
    "{",
    "}",
    "[",
    "]",
    ":",
    "|",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "null",
    "true",
    "\"text\"",
    "\"id\"",
    "\"gold\"",
    "\"annotations\"",
    "1e999",
    "-",
    "'=",
    "'",
    "=cmd",
    "ann:ghost",
    "ann:ann1",
    "\"meta\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "nope",
    "\u{1F600}",
    "\u{feff}",
    "\0",
];

/// The panics seen on any thread since the start (counted by the panic hook).
static PANICS: AtomicU64 = AtomicU64::new(0);

struct Args {
    seconds: f64,
    seed: u64,
}

/// `--seconds N` (default 10) and `--seed N` (default 1); anything else (cargo passes
/// `--bench`) is ignored.
fn parse_args() -> Args {
    let mut args = Args {
        seconds: 10.0,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().and_then(|v| v.parse().ok());
                args.seconds = value.expect("--seconds needs a number");
            }
            "--seed" => {
                let value = it.next().and_then(|v| v.parse().ok());
                args.seed = value.expect("--seed needs a whole number");
            }
            _ => {}
        }
    }
    args
}

struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The byte ranges of `input`'s lines (each with its `\n`).
fn line_ranges(input: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for (i, b) in input.iter().enumerate() {
        if *b == b'\n' {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < input.len() {
        ranges.push(start..input.len());
    }
    ranges
}

/// The lines a reader could number in `input`: each `\n`, `\r\n` or lone `\r` ends one, and
/// there is always at least one (an empty file's errors are on line 1).
fn line_count(input: &[u8]) -> u64 {
    let mut ends = 0u64;
    for (i, b) in input.iter().enumerate() {
        match b {
            b'\n' => ends += 1,
            b'\r' if input.get(i + 1) != Some(&b'\n') => ends += 1,
            _ => {}
        }
    }
    ends + 1
}

fn replace_first(input: &mut Vec<u8>, from: &[u8], to: &[u8]) -> bool {
    match input.windows(from.len()).position(|w| w == from) {
        Some(at) => {
            input.splice(at..at + from.len(), to.iter().copied());
            true
        }
        None => false,
    }
}

/// One structure-aware mutation of `input`; `all_seeds` feeds the splices.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, all_seeds: &[&[u8]]) {
    let at = |rng: &mut Rng, input: &Vec<u8>| rng.below(input.len() + 1);
    match rng.below(18) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, input);
            input.insert(i, rng.below(256) as u8);
        }
        2 if !input.is_empty() => {
            let start = rng.below(input.len());
            let end = (start + 1 + rng.below(16)).min(input.len());
            input.drain(start..end);
        }
        3 => {
            let keep = rng.below(input.len() + 1);
            input.truncate(keep);
        }
        4 => {
            // Duplicate a line: duplicate ids and texts.
            let lines = line_ranges(input);
            if !lines.is_empty() {
                let line = rng.pick(&lines).clone();
                let copy = input[line.clone()].to_vec();
                let to = rng.pick(&lines).start;
                input.splice(to..to, copy);
            }
        }
        5 => {
            // Splice in a line of any seed, of any format.
            let donor = *rng.pick(all_seeds);
            let donor_lines = line_ranges(donor);
            let lines = line_ranges(input);
            if !donor_lines.is_empty() {
                let piece = donor[rng.pick(&donor_lines).clone()].to_vec();
                let to = if lines.is_empty() {
                    0
                } else {
                    rng.pick(&lines).start
                };
                input.splice(to..to, piece);
            }
        }
        6 => {
            let lines = line_ranges(input);
            if lines.len() >= 2 {
                let mut reordered: Vec<Vec<u8>> =
                    lines.iter().map(|r| input[r.clone()].to_vec()).collect();
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                reordered.swap(a, b);
                *input = reordered.concat();
            }
        }
        7 => {
            let bad: &[&[u8]] = &[
                b"\xff",
                b"\xc3",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
            ];
            let i = at(rng, input);
            input.splice(i..i, rng.pick(bad).iter().copied());
        }
        8 => {
            // A huge field; now and then one past the line limit.
            let len = if rng.one_in(40) {
                OVER_LINE_LIMIT
            } else {
                1 + rng.below(200_000)
            };
            let i = at(rng, input);
            input.splice(i..i, std::iter::repeat_n(b'x', len));
        }
        9 => {
            let i = at(rng, input);
            input.insert(i, b'"');
        }
        10 => {
            let i = if rng.one_in(2) { 0 } else { at(rng, input) };
            input.splice(i..i, "\u{feff}".bytes());
        }
        11 => {
            // Line endings: all CRLF, or all lone CR.
            let ending: &[u8] = if rng.one_in(2) { b"\r\n" } else { b"\r" };
            let mut out = Vec::with_capacity(input.len() + 16);
            for &b in input.iter() {
                if b == b'\n' {
                    out.extend_from_slice(ending);
                } else {
                    out.push(b);
                }
            }
            *input = out;
        }
        12 => {
            let i = at(rng, input);
            input.insert(i, 0);
        }
        13 => {
            // Deep nesting, as a whole line or as a field's value.
            let deepest = if rng.one_in(4) { 200_000 } else { 300 };
            let depth = 1 + rng.below(deepest);
            let open = if rng.one_in(2) { "[" } else { "{\"a\":" };
            let close = if open == "[" { "]" } else { "}" };
            let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let line = if rng.one_in(2) {
                format!("{nested}\n")
            } else {
                format!("{{\"text\":\"deep\",\"meta\":{nested}}}\n")
            };
            let lines = line_ranges(input);
            let to = if lines.is_empty() {
                0
            } else {
                rng.pick(&lines).start
            };
            input.splice(to..to, line.into_bytes());
        }
        14 => {
            let label = rng.pick(&LABELS).as_bytes();
            replace_first(input, label, b"nope");
        }
        15 => {
            let blanks: [&[u8]; 4] = [b"\n", b"   \n", b"\t\r\n", b",,,,\n"];
            let blank = *rng.pick(&blanks);
            let i = line_ranges(input).first().map_or(0, |r| r.end);
            input.splice(i..i, blank.iter().copied());
        }
        16 => {
            let id = rng.pick(SEED_IDS).as_bytes();
            replace_first(input, id, b"base-1");
        }
        _ => {
            let token = rng.pick(TOKENS).as_bytes();
            let i = at(rng, input);
            input.splice(i..i, token.iter().copied());
        }
    }
}

/// An import error's problem with its particulars (numbers, quoted names, details after a
/// colon) left out, so errors group by kind.
fn error_kind(problem: &str) -> String {
    let mut kind = String::new();
    let mut quoted = false;
    // Names are quoted as Rust debug strings: `\"` inside one does not end it.
    let mut escaped = false;
    for c in problem.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                if quoted {
                    kind.push('…');
                }
            }
            _ if quoted => {}
            ':' | '(' => break,
            c if c.is_ascii_digit() => {
                if !kind.ends_with('#') {
                    kind.push('#');
                }
            }
            c => kind.push(c),
        }
    }
    kind.trim().to_string()
}

#[derive(Default)]
struct FormatTally {
    inputs: u64,
    accepted: u64,
    rejected: u64,
    bytes: u64,
}

/// A project holding [`BASE_ITEMS`], with its JSONL export as it stands.
struct Target {
    project: ProjectId,
    export: String,
    items: usize,
}

struct Fuzzer {
    engine: Engine,
    admin: Principal,
    projects: u64,
    target: Target,
}

fn export_jsonl(engine: &Engine, admin: &Principal, project: ProjectId) -> String {
    let mut out = Vec::new();
    engine
        .export(admin, project, ExportFormat::Jsonl, &mut out)
        .expect("export the fuzzed project");
    String::from_utf8(out).expect("an export is UTF-8")
}

impl Fuzzer {
    fn new(dir: &std::path::Path) -> Fuzzer {
        let engine = Engine::open(dir).expect("open the engine");
        let admin = engine
            .bootstrap_admin(ADMIN, PASSWORD)
            .expect("first admin");
        engine
            .create_user(&admin, ANNOTATOR, PASSWORD, false)
            .expect("the seeds' annotator");
        let target = Fuzzer::fresh_target(&engine, &admin, 0);
        Fuzzer {
            engine,
            admin,
            projects: 1,
            target,
        }
    }

    fn fresh_target(engine: &Engine, admin: &Principal, n: u64) -> Target {
        let spec = ProjectSpec {
            name: format!("fuzz {n}"),
            task: if n.is_multiple_of(2) {
                TaskKind::Classification
            } else {
                TaskKind::Multilabel
            },
            labels: LABELS.iter().map(|l| Label::named(*l)).collect(),
            guidelines: String::new(),
            settings: ProjectSettings::default(),
            relation_labels: Vec::new(),
        };
        let project = engine.create_project(admin, spec).expect("create project");
        let options = ImportOptions::default();
        engine
            .import(admin, project, BASE_ITEMS.as_bytes(), &options, &mut |_| {})
            .expect("import the base items");
        let export = export_jsonl(engine, admin, project);
        let items = export.lines().count();
        Target {
            project,
            export,
            items,
        }
    }

    /// Imports `input`; returns the failures it showed (empty when every check held).
    fn run(
        &mut self,
        format: ImportFormat,
        input: &[u8],
        tally: &mut FormatTally,
        kinds: &mut BTreeMap<String, u64>,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        let options = ImportOptions {
            format,
            ..ImportOptions::default()
        };
        let panics_before = PANICS.load(Ordering::SeqCst);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.engine.import(
                &self.admin,
                self.target.project,
                input,
                &options,
                &mut |_| {},
            )
        }));
        if PANICS.load(Ordering::SeqCst) != panics_before {
            failures.push("panicked".to_string());
        }
        tally.inputs += 1;
        tally.bytes += input.len() as u64;
        match outcome {
            Err(_) => {}
            Ok(Ok(report)) => {
                tally.accepted += 1;
                let now = export_jsonl(&self.engine, &self.admin, self.target.project);
                let expected = self.target.items + report.imported as usize;
                if now.lines().count() != expected {
                    failures.push(format!(
                        "accepted with {} imported, but the project holds {} items instead of {expected}",
                        report.imported,
                        now.lines().count()
                    ));
                }
                // The next input starts again from the base items.
                self.target = Fuzzer::fresh_target(&self.engine, &self.admin, self.projects);
                self.projects += 1;
            }
            Ok(Err(e)) => {
                tally.rejected += 1;
                match &e {
                    EngineError::Import { line, problem } => {
                        *kinds.entry(error_kind(problem)).or_default() += 1;
                        let lines = line_count(input);
                        if *line < 1 || *line > lines {
                            failures.push(format!(
                                "error names line {line} of an input of {lines} lines: {e}"
                            ));
                        }
                        if !e.to_string().starts_with(&format!("line {line}: ")) {
                            failures.push(format!("error does not say its line: {e}"));
                        }
                    }
                    other => {
                        *kinds
                            .entry(format!("NOT AN IMPORT ERROR ({:?})", other.kind()))
                            .or_default() += 1;
                        failures.push(format!("error without a line: {other:?}"));
                    }
                }
                let now = export_jsonl(&self.engine, &self.admin, self.target.project);
                if now != self.target.export {
                    failures.push(format!(
                        "a rejected import changed the project ({} items before, {} after)",
                        self.target.items,
                        now.lines().count()
                    ));
                    self.target = Fuzzer::fresh_target(&self.engine, &self.admin, self.projects);
                    self.projects += 1;
                }
            }
        }
        failures
    }
}

fn main() {
    let args = parse_args();
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        eprintln!("PANIC: {info}");
    }));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut fuzzer = Fuzzer::new(dir.path());
    let mut rng = Rng(SplitMix64::new(args.seed));

    let formats: [(ImportFormat, &str, &[&str]); 3] = [
        (ImportFormat::Jsonl, "jsonl", JSONL_SEEDS),
        (ImportFormat::Csv, "csv", CSV_SEEDS),
        (ImportFormat::Text, "text", TEXT_SEEDS),
    ];
    let all_seeds: Vec<&[u8]> = formats
        .iter()
        .flat_map(|(_, _, seeds)| seeds.iter().map(|s| s.as_bytes()))
        .collect();
    let mut tallies: Vec<FormatTally> = formats.iter().map(|_| FormatTally::default()).collect();
    let mut kinds: Vec<BTreeMap<String, u64>> = formats.iter().map(|_| BTreeMap::new()).collect();
    let mut failures = 0u64;
    let budget = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let mut round = 0usize;
    while start.elapsed() < budget {
        let which = round % formats.len();
        round += 1;
        let (format, name, seeds) = formats[which];
        let mut input = rng.pick(seeds).as_bytes().to_vec();
        // Now and then the seed as it is: the valid file must keep importing.
        let mutations = if rng.one_in(20) { 0 } else { 1 + rng.below(4) };
        for _ in 0..mutations {
            mutate(&mut rng, &mut input, &all_seeds);
        }
        let found = fuzzer.run(format, &input, &mut tallies[which], &mut kinds[which]);
        if !found.is_empty() {
            failures += 1;
            let path = std::env::temp_dir().join(format!(
                "import-fuzz-failure-{}-{name}-{round}.bin",
                args.seed
            ));
            let saved = std::fs::write(&path, &input).is_ok();
            eprintln!(
                "FAILURE ({name}, round {round}{}): {}",
                if saved {
                    format!(", input in {}", path.display())
                } else {
                    String::new()
                },
                found.join("; ")
            );
        }
    }
    let elapsed = start.elapsed().as_secs_f64();

    println!(
        "import fuzz: seed {}, {:.1} s, {} projects",
        args.seed, elapsed, fuzzer.projects
    );
    println!(
        "{:<6} {:>8} {:>9} {:>9} {:>10} {:>9}",
        "format", "inputs", "accepted", "rejected", "MB", "inputs/s"
    );
    let mut total = 0;
    for ((_, name, _), tally) in formats.iter().zip(&tallies) {
        total += tally.inputs;
        println!(
            "{:<6} {:>8} {:>9} {:>9} {:>10.1} {:>9.0}",
            name,
            tally.inputs,
            tally.accepted,
            tally.rejected,
            tally.bytes as f64 / 1e6,
            tally.inputs as f64 / elapsed
        );
    }
    println!(
        "total  {total:>8} inputs, {:.0} inputs/s",
        total as f64 / elapsed
    );
    for ((_, name, _), kinds) in formats.iter().zip(&kinds) {
        println!("errors by kind, {name}:");
        for (kind, count) in kinds {
            println!("  {count:>7}  {kind}");
        }
    }
    let panics = PANICS.load(Ordering::SeqCst);
    println!("panics: {panics}");
    println!("inputs failing a check: {failures}");
    drop(fuzzer);
    if panics > 0 || failures > 0 {
        std::process::exit(1);
    }
}
