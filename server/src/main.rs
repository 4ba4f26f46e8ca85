//! `concord`: the command line. Serving, accounts, tokens, import and export; each command is a
//! thin layer over the engine.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use concord::config::{Overrides, ServeConfig, DEFAULT_DATA_DIR};
use concord::AppState;
use concord_domain::{JobKind, JobState};
use concord_engine::{Engine, ExportFormat, ImportFormat, ImportOptions, Principal};

#[derive(Parser)]
#[command(
    name = "concord",
    version,
    about = "Build labeled text datasets with a model in the loop."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataDir {
    /// Where the database (concord.redb) lives.
    #[arg(long, env = "CONCORD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (UI, REST API under /api/v1).
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Import items into a project (stop the server first, or use POST /api/v1/projects/{id}/items).
    Import(ImportArgs),
    /// Export a project (stop the server first, or use GET /api/v1/projects/{id}/export).
    Export(ExportArgs),
    /// Inter-annotator agreement of a project (stop the server first, or use GET
    /// /api/v1/projects/{id}/agreement), or of any ratings file with --ratings.
    Agreement(AgreementArgs),
    /// Train a new model version on a project's confirmed labels (stop the server first, or use
    /// POST /api/v1/projects/{id}/train).
    Train(ModelJobArgs),
    /// Pre-annotate every item of a project with its active model, zero-shot when it has none
    /// (stop the server first, or use POST /api/v1/projects/{id}/predict); or, with --model,
    /// pre-annotate one shard of a JSONL file with an exported model, with no database.
    Predict(PredictArgs),
    /// Model versions: export one as a self-contained model file for `predict --model`.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Replay a labelled JSONL dataset through the model loop: zero-shot accuracy, then accuracy
    /// and macro-F1 after each round of labels picked by each active-learning strategy.
    Simulate(SimulateArgs),
    /// Plant random label flips in a labelled JSONL dataset and measure how many the
    /// label-error detector finds (precision@k, recall), beside cleanlab's anchors.
    SimulateLabelErrors(LabelErrorSimArgs),
    /// Write a consistent snapshot of the database to FILE (a redb file). A running server
    /// holds the database: back it up through it with --url (and an administrator's token).
    Backup(BackupArgs),
    /// Replace the database of a data directory with a backup FILE, after checking it (stop
    /// the server first).
    Restore(RestoreArgs),
    /// Verify a database file: redb's integrity check, the schema version, every row decoded
    /// (the data directory's database, or FILE; stop the server first or check a backup).
    Check(CheckArgs),
}

#[derive(Args)]
struct BackupArgs {
    /// The backup file to write (replaced atomically if it exists).
    file: PathBuf,
    /// A running server's address (e.g. http://127.0.0.1:8080): back up through its API.
    #[arg(long)]
    url: Option<String>,
    /// With --url: an administrator's API token.
    #[arg(long, env = "CONCORD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args)]
struct RestoreArgs {
    /// A backup made by `concord backup`.
    file: PathBuf,
    /// Replace a database that the data directory already has.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args)]
struct CheckArgs {
    /// A database file to check [default: the data directory's database].
    file: Option<PathBuf>,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TrainerArg {
    Head,
    FineTune,
    /// Few-shot: the encoder tuned on pairs of labelled texts (SetFit-style), then the head.
    Setfit,
}

#[derive(Args)]
struct ModelJobArgs {
    /// Project id or exact name.
    project: String,
    /// `train`: head (a classifier on the frozen encoder, seconds), fine-tune (the encoder
    /// too, minutes) or setfit (few labels: the encoder tuned on pairs of labelled texts, then
    /// the head; tens of seconds at 50–100 labels).
    #[arg(long, value_enum, default_value = "head")]
    trainer: TrainerArg,
    /// `train --trainer fine-tune|setfit`: passes over the confirmed labels.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=concord_engine::MAX_FINE_TUNE_EPOCHS as u64))]
    epochs: Option<u64>,
    /// Folder holding model folders (all-MiniLM-L6-v2 inside it).
    #[arg(long, env = "CONCORD_MODELS", default_value = concord::config::DEFAULT_MODELS_DIR)]
    models: PathBuf,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args)]
struct PredictArgs {
    /// Project id or exact name: pre-annotate its items in its database (leave out with
    /// --model).
    #[arg(required_unless_present = "model", conflicts_with = "model")]
    project: Option<String>,
    /// A model file from `concord models export`: pre-annotate --input with it, statelessly
    /// (no database, no data directory), after checking each encoder file's SHA-256.
    #[arg(long)]
    model: Option<PathBuf>,
    /// With --model: JSONL items, one object per line with an id and a text.
    #[arg(long, requires = "model")]
    input: Option<PathBuf>,
    /// With --model: where this shard's part goes (JSONL that `concord import --labels-as
    /// model` reads: id, text, the label as "gold" and its probability as "score", in input
    /// order), written whole or not at all.
    #[arg(long, requires = "model")]
    output: Option<PathBuf>,
    /// With --model: which part of the input to predict, I/N, counted from 0 (I < N): the
    /// k-th item (0-based, blank lines not counted) belongs to shard k mod N, so shard I of a
    /// Kubernetes Indexed Job is $JOB_COMPLETION_INDEX/N and of a Slurm array --array=0-(N-1)
    /// $SLURM_ARRAY_TASK_ID/N. Every shard checks every line.
    #[arg(long, value_parser = concord::portable_cli::parse_shard, default_value = "0/1")]
    shard: concord::portable_cli::Shard,
    /// Pre-annotate with a generative model instead: a GGUF file's name in the models folder
    /// (or its gguf/ folder) without `.gguf`, or `server:MODEL` for the OpenAI-compatible
    /// server that CONCORD_LLM_BASE_URL and CONCORD_LLM_MODEL name. Makes a version with
    /// trainer `llm`.
    #[arg(long, conflicts_with = "model")]
    generator: Option<String>,
    /// With --generator: demonstrations per item, the confirmed training-split items nearest
    /// to it (0: zero-shot; default 8).
    #[arg(long, requires = "generator")]
    shots: Option<u8>,
    /// With --model: the field holding each item's text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// With --model: the field holding each item's id (a string or a number; required).
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Folder holding model folders (all-MiniLM-L6-v2 inside it).
    #[arg(long, env = "CONCORD_MODELS", default_value = concord::config::DEFAULT_MODELS_DIR)]
    models: PathBuf,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Write a classification version as a self-contained model file: its classifier, label
    /// names and encoder, referenced by model folder name and the SHA-256 of each of its files
    /// (a fine-tuned version's weights are written beside it, named by their SHA-256). For
    /// `concord predict --model` on any machine. Stop the server first.
    Export {
        /// Project id or exact name.
        project: String,
        /// The version's number (GET /api/v1/projects/{id}/models lists them).
        #[arg(value_name = "VERSION")]
        number: u64,
        /// The model file to write (e.g. model.json; replaced atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// Folder holding model folders (all-MiniLM-L6-v2 inside it).
        #[arg(long, env = "CONCORD_MODELS", default_value = concord::config::DEFAULT_MODELS_DIR)]
        models: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Args)]
struct LabelErrorSimArgs {
    /// JSONL file with an id, a text and a label per line.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "text")]
    text_field: String,
    #[arg(long, default_value = "label")]
    label_field: String,
    /// Model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, env = "CONCORD_MODEL", default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Share of the items whose label is flipped to another class.
    #[arg(long, default_value_t = 0.1)]
    flip: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// dev: items whose sha256(id) is even (choose methods there); report: the others.
    #[arg(long, value_enum, default_value = "all")]
    split: concord::label_errors_cli::Split,
    /// Folder of the embedding cache.
    #[arg(long, default_value = "simulation")]
    cache: PathBuf,
    /// Write the embeddings and the flipped labels here for scripts/bench/label_errors_cleanlab.py.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Args)]
struct SimulateArgs {
    /// JSONL file with a text and a gold label per line.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "text")]
    text_field: String,
    #[arg(long, default_value = "label")]
    label_field: String,
    /// Model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, env = "CONCORD_MODEL", default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// A label's description for zero-shot scoring, as LABEL=TEXT (repeatable).
    #[arg(long = "describe", value_parser = parse_description)]
    descriptions: Vec<(String, String)>,
    /// Labels added per round.
    #[arg(long, default_value_t = 50)]
    round_size: usize,
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Folder for simulation.md, simulation.csv, simulation.svg and the embedding cache.
    #[arg(long, default_value = "simulation")]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Head training: epochs of full-batch AdamW.
    #[arg(long, default_value_t = concord_ml::HeadParams::default().epochs)]
    head_epochs: usize,
    #[arg(long, default_value_t = concord_ml::HeadParams::default().learning_rate)]
    head_learning_rate: f64,
    #[arg(long, default_value_t = concord_ml::HeadParams::default().weight_decay)]
    head_weight_decay: f64,
    /// Weigh classes by inverse frequency.
    #[arg(long, default_value_t = concord_ml::HeadParams::default().balance_classes, action = clap::ArgAction::Set)]
    head_balance: bool,
    /// Replay the loop that trains itself instead of the strategies: labels in the engine's
    /// queue order, a head retrained every N labels that replaces the active version only
    /// when not worse; prints test accuracy at each checkpoint beside the majority rate.
    #[arg(long)]
    auto_loop: bool,
    /// With --auto-loop: retrain after every N labels (the project default).
    #[arg(long, default_value_t = concord_domain::AutoTrainSettings::default().every as usize)]
    auto_every: usize,
    /// With --auto-loop: label counts at which to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [50usize, 100, 300])]
    auto_checkpoints: Vec<usize>,
    /// With --auto-loop: label counts at which the loop tunes the encoder few-shot
    /// (SetFit-style, as the `setfit` trainer; the project default), comma-separated;
    /// `--few-shot-at` with no value: heads only.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [50usize])]
    few_shot_at: Vec<usize>,
}

fn parse_description(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(l, d)| (l.trim().to_string(), d.trim().to_string()))
        .ok_or_else(|| format!("expected LABEL=TEXT, got {s:?}"))
}

#[derive(Args)]
struct AgreementArgs {
    /// Project id or exact name (leave out with --ratings).
    #[arg(required_unless_present = "ratings")]
    project: Option<String>,
    /// A ratings file from any tool: CSV (header of rater names; an optional first column
    /// `item`) or JSON (rows as arrays or objects); items as rows, raters as columns, empty or
    /// null = missing.
    #[arg(long, conflicts_with = "project")]
    ratings: Option<PathBuf>,
    /// Measurement level of the ratings (a project's labels are nominal).
    #[arg(long, value_enum, default_value = "nominal")]
    level: concord::agreement_cli::Level,
    /// With --ratings: every category of the scale, in scale order (numbers ascending), e.g.
    /// `--categories 1,2,3,4,5`, so that a category nobody chose still counts (Gwet's AC1/AC2
    /// and Brennan–Prediger depend on the number of categories) [default: the values present].
    #[arg(long, requires = "ratings", value_delimiter = ',', num_args = 1..)]
    categories: Option<Vec<String>>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONCORD_ADDR")]
    addr: Option<String>,
    /// Where the database (concord.redb) lives [default: concord-data].
    #[arg(long, env = "CONCORD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file (TOML: addr, data_dir, secure_cookies, max_upload_mb, trust_forwarded_for) [default: DATA_DIR/concord.toml if present].
    #[arg(long, env = "CONCORD_CONFIG")]
    config: Option<PathBuf>,
    /// Mark cookies Secure (serve behind HTTPS).
    #[arg(long, env = "CONCORD_SECURE_COOKIES")]
    secure_cookies: Option<bool>,
    /// Largest accepted upload, in MB.
    #[arg(long, env = "CONCORD_MAX_UPLOAD_MB")]
    max_upload_mb: Option<u64>,
    /// Folder holding model folders; the default encoder is all-MiniLM-L6-v2 inside it
    /// (scripts/setup.sh fetches it), else the copy release binaries carry; a folder here
    /// adds models or overrides that copy [default: models].
    #[arg(long, env = "CONCORD_MODELS")]
    models: Option<PathBuf>,
    /// Create a demo project when the database has none: 300 rated tweets, four simulated
    /// annotator accounts and their answers.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is prompted for, or read from standard input.
    Add {
        name: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Disable an account: its sessions end and its API tokens stop working at once.
    Disable {
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Enable a disabled account.
    Enable {
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Set an account's password (prompted for, or read from standard input); its sessions end.
    Password {
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for USER and print it (shown once).
    Add {
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// The token stops working after this many days [default: never].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        expires_days: Option<u32>,
        #[command(flatten)]
        data: DataDir,
    },
    /// List API tokens (every account's, or USER's): id, account, name, created, last used,
    /// expiry. Never the secrets.
    List {
        user: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Revoke the API token with this id (from `concord token list`).
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Args)]
struct ImportArgs {
    /// Project id or exact name.
    project: String,
    /// The file to import ("-" for standard input).
    file: PathBuf,
    /// jsonl, csv, text, conll, label-studio or doccano [default: from the file name].
    #[arg(long)]
    format: Option<String>,
    #[arg(long, default_value = "text")]
    text_field: String,
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Field or column with the gold label(s).
    #[arg(long, default_value = "gold")]
    gold_field: String,
    /// Skip texts already in the project instead of keeping them (both are reported).
    #[arg(long)]
    skip_duplicates: bool,
    /// What the file's labels (the gold field or column, CoNLL tags, Prodigy spans, a Label
    /// Studio task's annotation) are: gold; the answers of the annotator account
    /// --labels-name; or suggestions of an external model, stored as a new model version named
    /// --labels-name, with the file's "score" as their confidence (how the parts of `concord
    /// predict --model` are merged).
    #[arg(long, value_parser = ["gold", "annotator", "model"], default_value = "gold")]
    labels_as: String,
    /// With --labels-as annotator: the account; with --labels-as model: the version's name.
    #[arg(long)]
    labels_name: Option<String>,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args)]
struct ExportArgs {
    /// Project id or exact name.
    project: String,
    /// jsonl, csv, conll, prodigy, label-studio or doccano (which ones depends on the task).
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Output file [default: standard output].
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    data: DataDir,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,concord=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::User(UserCommand::Add { name, admin, data }) => {
            let engine = open(&data.data_dir)?;
            let password = read_password(&name)?;
            let user = engine.create_user_locally(&name, &password, admin)?;
            eprintln!(
                "created {}account {:?}",
                if user.is_admin { "administrator " } else { "" },
                user.name
            );
            Ok(())
        }
        Command::User(UserCommand::Disable { name, data }) => {
            open(&data.data_dir)?.set_user_disabled_locally(&name, true)?;
            eprintln!("disabled account {name:?}");
            Ok(())
        }
        Command::User(UserCommand::Enable { name, data }) => {
            open(&data.data_dir)?.set_user_disabled_locally(&name, false)?;
            eprintln!("enabled account {name:?}");
            Ok(())
        }
        Command::User(UserCommand::Password { name, data }) => {
            let engine = open(&data.data_dir)?;
            let password = read_password(&name)?;
            engine.set_password_locally(&name, &password)?;
            eprintln!("password of {name:?} set; its sessions ended");
            Ok(())
        }
        Command::Token(TokenCommand::Add {
            user,
            name,
            expires_days,
            data,
        }) => {
            let engine = open(&data.data_dir)?;
            let who = engine.principal_by_name(&user)?;
            let lifetime =
                expires_days.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
            println!(
                "{}",
                engine.create_expiring_api_token_locally(who.id, &name, lifetime)?
            );
            Ok(())
        }
        Command::Token(TokenCommand::List { user, data }) => {
            let engine = open(&data.data_dir)?;
            let user = match user {
                Some(name) => Some(engine.principal_by_name(&name)?.id),
                None => None,
            };
            print_tokens(&engine.api_tokens(&concord_engine::Principal::local(), user)?);
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { id, data }) => {
            open(&data.data_dir)?.revoke_api_token(&concord_engine::Principal::local(), &id)?;
            eprintln!("revoked API token {id}");
            Ok(())
        }
        Command::Backup(args) => backup(args),
        Command::Restore(args) => restore(args),
        Command::Check(args) => check(args),
        Command::Import(args) => import(args),
        Command::Export(args) => export(args),
        Command::Agreement(args) => agreement(args),
        Command::Train(args) => model_job(args, None),
        Command::Predict(args) => predict(args),
        Command::Models(ModelsCommand::Export {
            project,
            number,
            output,
            models,
            data,
        }) => {
            let engine = Engine::open_for_command_with_models(&data.data_dir, Some(models))
                .with_context(|| {
                    format!("opening the data directory {}", data.data_dir.display())
                })?;
            let model = concord::portable_cli::export_model(&engine, &project, number, &output)?;
            eprintln!(
                "wrote version {} of project {:?} ({}, labels {}) to {}",
                model.version,
                model.project,
                model.trainer,
                model.labels.join(", "),
                output.display()
            );
            if let Some(weights) = &model.encoder.weights {
                eprintln!(
                    "its fine-tuned weights are {} beside it: copy both",
                    weights.name
                );
            }
            Ok(())
        }
        Command::SimulateLabelErrors(a) => {
            concord::label_errors_cli::run(&concord::label_errors_cli::LabelErrorSimOptions {
                data: a.data,
                text_field: a.text_field,
                label_field: a.label_field,
                model: a.model,
                flip: a.flip,
                seed: a.seed,
                split: a.split,
                cache: a.cache,
                export: a.export,
            })
        }
        Command::Simulate(a) => {
            concord::simulate_cli::run(&concord::simulate_cli::SimulateOptions {
                data: a.data,
                text_field: a.text_field,
                label_field: a.label_field,
                model: a.model,
                descriptions: a.descriptions,
                round_size: a.round_size,
                rounds: a.rounds,
                out: a.out,
                seed: a.seed,
                head: concord_ml::HeadParams {
                    epochs: a.head_epochs,
                    learning_rate: a.head_learning_rate,
                    weight_decay: a.head_weight_decay,
                    balance_classes: a.head_balance,
                },
                auto_loop: a
                    .auto_loop
                    .then_some(concord::simulate_cli::AutoLoopOptions {
                        every: a.auto_every,
                        checkpoints: a.auto_checkpoints,
                        few_shot_at: a.few_shot_at,
                    }),
            })
        }
    }
}

/// `concord predict`: a project's prediction job, or with --model one shard of a file.
fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let Some(model) = args.model else {
        let generate = args
            .generator
            .map(|generator| concord_domain::GenerateParams {
                generator,
                shots: args.shots,
            });
        return model_job(
            ModelJobArgs {
                project: args.project.unwrap_or_default(),
                trainer: TrainerArg::Head,
                epochs: None,
                models: args.models,
                data: args.data,
            },
            Some(generate.map_or(ModelJob::Predict, ModelJob::Generate)),
        );
    };
    let (Some(input), Some(output)) = (args.input, args.output) else {
        bail!("--model needs --input (the JSONL items) and --output (this shard's part)");
    };
    let options = concord::portable_cli::PredictOptions {
        model,
        models: args.models,
        input,
        output,
        shard: args.shard,
        text_field: args.text_field,
        id_field: args.id_field,
    };
    let report = concord::portable_cli::predict(&options)?;
    eprintln!(
        "shard {}: pre-annotated {} of {} items with version {} of project {:?}; wrote {}",
        options.shard,
        report.predicted,
        report.items,
        report.version,
        report.project,
        options.output.display()
    );
    Ok(())
}

/// A job `concord predict` runs (`concord train` runs a training).
enum ModelJob {
    Predict,
    Generate(concord_domain::GenerateParams),
}

/// Runs a train (`job` None), predict or generate job in this process, with a progress bar,
/// and prints its outcome.
fn model_job(args: ModelJobArgs, job: Option<ModelJob>) -> anyhow::Result<()> {
    let engine = Engine::open_with_models(&args.data.data_dir, Some(args.models.clone()))
        .with_context(|| {
            format!(
                "opening the data directory {}",
                args.data.data_dir.display()
            )
        })?;
    let project = engine.find_project(&args.project)?;
    engine.set_generator_server(
        concord_engine::OpenAiConfig::from_env()
            .context("reading CONCORD_LLM_BASE_URL, CONCORD_LLM_MODEL and CONCORD_LLM_API_KEY")?,
    );
    let local = Principal::local();
    let kind = match &job {
        None => JobKind::Train,
        Some(ModelJob::Predict) => JobKind::Predict,
        Some(ModelJob::Generate(_)) => JobKind::Generate,
    };
    let job = match job {
        None => engine.enqueue_train(
            &local,
            project,
            concord_engine::TrainRequest {
                trainer: match args.trainer {
                    TrainerArg::Head => concord_engine::Trainer::Head,
                    TrainerArg::FineTune => concord_engine::Trainer::FineTune,
                    TrainerArg::Setfit => concord_engine::Trainer::SetFit,
                },
                epochs: args.epochs.map(|e| e as usize),
                auto: None,
            },
        )?,
        Some(ModelJob::Predict) => engine.enqueue_predict(&local, project)?,
        Some(ModelJob::Generate(params)) => engine.enqueue_generate(&local, project, params)?,
    };
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:40} {pos}/{len} · {per_sec} · eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(match (kind, args.trainer) {
        (JobKind::Train, TrainerArg::Head) => "embedding items, then training",
        (JobKind::Train, TrainerArg::FineTune) => "fine-tuning (steps), then re-embedding (items)",
        (JobKind::Train, TrainerArg::Setfit) => {
            "few-shot tuning (steps), then re-embedding (items)"
        }
        (JobKind::Predict, _) => "pre-annotating items",
        (JobKind::Generate, _) => "pre-annotating items with the generator",
    });
    let info = loop {
        let info = engine.job(&local, job)?;
        bar.set_length(info.total);
        bar.set_position(info.done);
        if info.state.is_finished() {
            break info;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    bar.finish_and_clear();
    match info.state {
        JobState::Done => {
            println!(
                "{}",
                serde_json::to_string_pretty(&info.result.unwrap_or_default())?
            );
            Ok(())
        }
        state => bail!(
            "job {job} {state}: {}",
            info.error.unwrap_or_else(|| "stopped".into())
        ),
    }
}

fn open(data_dir: &std::path::Path) -> anyhow::Result<Engine> {
    Engine::open_for_command(data_dir)
        .with_context(|| format!("opening the data directory {}", data_dir.display()))
}

/// One tab-separated line per token, with a header: easy to read and to `cut`.
fn print_tokens(tokens: &[concord_engine::TokenInfo]) {
    use concord_app::wire::format_utc_minute;
    println!("id\taccount\tname\tcreated\tlast used\texpires");
    for t in tokens {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.id,
            t.user_name,
            t.name,
            format_utc_minute(t.created_ms),
            t.last_used_ms
                .map(format_utc_minute)
                .unwrap_or_else(|| "never".into()),
            t.expires_ms
                .map(format_utc_minute)
                .unwrap_or_else(|| "never".into()),
        );
    }
}

fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(
        Overrides {
            addr: args.addr,
            data_dir: args.data_dir,
            secure_cookies: args.secure_cookies,
            max_upload_mb: args.max_upload_mb,
            models_dir: args.models,
        },
        args.config.as_deref(),
    )?;
    let engine = Engine::open_with_models(&config.data_dir, Some(config.models_dir.clone()))
        .with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
    engine.set_credential_policy(config.credentials);
    // An OpenAI-compatible server for generators: from the environment only, so that its API
    // key is never written to the database or a config file Concord reads back.
    if let Some(server) = concord_engine::OpenAiConfig::from_env()
        .context("reading CONCORD_LLM_BASE_URL, CONCORD_LLM_MODEL and CONCORD_LLM_API_KEY")?
    {
        tracing::info!(model = %server.model, "generators may run on an OpenAI-compatible server");
        engine.set_generator_server(Some(server));
    }
    let status = engine.model_status();
    match &status.reason {
        None => {
            tracing::info!(model = %status.model, models = %config.models_dir.display(), "model features on")
        }
        Some(why) => tracing::warn!("model features are off: {why}"),
    }
    if args.demo {
        if let Some(demo) = concord::demo::seed(&engine)? {
            tracing::info!(
                "created the demo project {:?} with the annotators {}",
                concord::demo::DEMO_NAME,
                concord::demo::DEMO_ANNOTATORS.join(", ")
            );
            if !demo.new_accounts.is_empty() {
                tracing::info!(
                    "the demo annotators {} share the password {} (shown once)",
                    demo.new_accounts.join(", "),
                    demo.password
                );
            }
        }
    }
    if !concord::assets::frontend_present() {
        tracing::warn!("this binary was built without the frontend bundle: pages will not be interactive (build with `cargo xtask build`)");
    }
    let jobs = engine.clone();
    let mut state = AppState::new(engine, config.secure_cookies, config.max_upload_bytes);
    state.trust_forwarded_for = config.trust_forwarded_for;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let local = listener.local_addr()?;
        if let Some(token) = state.arm_setup()? {
            tracing::info!("no administrator exists yet: open http://{local}/setup?token={token} to create the first administrator within the hour (a restart arms a new link; or run `concord user add --admin NAME`)");
        }
        tracing::info!(data_dir = %config.data_dir.display(), "Concord is listening on http://{local}");
        let (stopping, mut stop) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let server = concord::serve(listener, state, shutdown);
        tokio::pin!(server);
        tokio::select! {
            done = &mut server => return done.context("server failed"),
            signal = stop_signal() => {
                tracing::info!("{signal}: shutting down (no new connections; finishing requests)");
            }
        }
        let _ = stopping.send(true);
        // Requests in flight finish; a connection that stays busy longer is cut.
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(done) => done.context("server failed"),
            Err(_) => {
                tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}: closing them");
                Ok(())
            }
        }
    })?;
    // Handlers' blocking engine calls finish before the engine shuts down.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    // The running job stops after its current batch (stored; it resumes there at the next
    // start), the writer commits what it received, and redb closes.
    if jobs.shutdown() {
        tracing::info!("database closed");
    } else {
        tracing::warn!("engine still in use at shutdown: the database closes at exit");
    }
    Ok(())
}

/// How long requests in flight may take to finish after a stop signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for SIGINT (Ctrl-C) or SIGTERM (systemd, Docker, Kubernetes); names the one received.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

fn print_counts(counts: &concord_engine::TableCounts) {
    for (table, rows) in &counts.tables {
        eprintln!("  {table:20} {rows:>10} rows");
    }
}

fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.url {
        let token = args
            .token
            .as_deref()
            .context("--url needs an administrator's API token (--token or CONCORD_TOKEN)")?;
        return backup_over_http(url, token, &args.file);
    }
    let counts = match concord_engine::backup_database(&args.data.data_dir, &args.file) {
        Err(concord_engine::StoreError::AlreadyOpen { .. }) => bail!(
            "a running server holds the database in {}: back up through it with `concord backup {} --url http://ADDRESS --token TOKEN` (an administrator's API token), or POST /api/v1/backup",
            args.data.data_dir.display(),
            args.file.display()
        ),
        other => other.with_context(|| {
            format!("backing up {} to {}", args.data.data_dir.display(), args.file.display())
        })?,
    };
    eprintln!(
        "wrote a snapshot of {} to {}",
        args.data.data_dir.display(),
        args.file.display()
    );
    print_counts(&counts);
    Ok(())
}

/// Downloads a snapshot from a running server into a temporary file next to `file`, checks
/// it, and renames it into place.
fn backup_over_http(url: &str, token: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let (dir, mut partial) = concord_engine::partial_file_beside(file, ".backup-")?;
    let endpoint = format!("{}/api/v1/backup", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut response = reqwest::Client::new()
            .post(&endpoint)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("calling {endpoint}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("{endpoint} answered {status}: {body}");
        }
        while let Some(chunk) = response.chunk().await.context("downloading the backup")? {
            partial.as_file_mut().write_all(&chunk)?;
        }
        anyhow::Ok(())
    })?;
    let report = concord_engine::check_database(partial.path())
        .context("the downloaded backup does not check clean")?;
    // Synced, renamed into place and the folder synced: whole at `file` or absent, after a
    // crash too.
    concord_engine::persist_synced(partial, file, &dir)?;
    eprintln!(
        "wrote a snapshot from {url} to {} (checked)",
        file.display()
    );
    print_counts(&report.counts);
    Ok(())
}

fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let database = args.data.data_dir.join(concord_engine::DATABASE_FILE);
    if database.exists() && !args.force {
        bail!(
            "{} already has a database: pass --force to replace it (back it up first)",
            args.data.data_dir.display()
        );
    }
    let report =
        concord_engine::restore_database(&args.file, &args.data.data_dir).with_context(|| {
            format!(
                "restoring {} into {}",
                args.file.display(),
                args.data.data_dir.display()
            )
        })?;
    eprintln!(
        "restored {} into {} (schema version {})",
        args.file.display(),
        args.data.data_dir.display(),
        report.schema_version
    );
    print_counts(&report.counts);
    Ok(())
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let file = args
        .file
        .unwrap_or_else(|| args.data.data_dir.join(concord_engine::DATABASE_FILE));
    if !file.exists() {
        bail!("{} does not exist", file.display());
    }
    let report = concord_engine::check_database(&file)
        .with_context(|| format!("checking {}", file.display()))?;
    println!(
        "{}: ok (schema version {})",
        file.display(),
        report.schema_version
    );
    for (table, rows) in &report.counts.tables {
        println!("  {table:20} {rows:>10} rows");
    }
    Ok(())
}

fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let engine = open(&args.data.data_dir)?;
    let project = engine.find_project(&args.project)?;
    let name = args.file.to_string_lossy().to_string();
    let format = match args.format.as_deref() {
        Some(f) => ImportFormat::parse(f).with_context(|| {
            format!("unknown format {f:?} (jsonl, csv, text, conll, label-studio or doccano)")
        })?,
        None => ImportFormat::from_file_name(&name)
            .with_context(|| format!("cannot tell the format of {name:?}; pass --format"))?,
    };
    let options = ImportOptions {
        format,
        text_field: args.text_field,
        id_field: args.id_field,
        gold_field: args.gold_field,
        skip_duplicates: args.skip_duplicates,
        labels_as: concord_engine::ImportedLabels::from_parts(
            Some(args.labels_as.as_str()),
            args.labels_name.as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
    };
    let (reader, size): (Box<dyn BufRead>, u64) = if name == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("opening {name}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (
            Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            size,
        )
    };
    let bar = progress_bar(
        size,
        "{spinner} importing [{bar:40}] {bytes}/{total_bytes} {msg} ({eta})",
    );
    let report = engine.import(&Principal::local(), project, reader, &options, &mut |p| {
        bar.set_position(p.bytes);
        bar.set_message(format!("{} items", p.items));
    });
    bar.finish_and_clear();
    let report = report?;
    eprintln!(
        "imported {} items ({} duplicate texts{}, {} blank lines, {} annotations)",
        report.imported,
        report.duplicates,
        if options.skip_duplicates {
            " skipped"
        } else {
            " kept"
        },
        report.blank_lines,
        report.annotations
    );
    for d in &report.duplicate_examples {
        eprintln!("  line {}: same text as item {:?}", d.line, d.existing_id);
    }
    if let Some(version) = report.model_version {
        eprintln!(
            "stored {} suggestions as model version {version} ({} without a score, confidence 0)",
            report.suggestions, report.suggestions_without_score
        );
    }
    Ok(())
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let engine = open(&args.data.data_dir)?;
    let project = engine.find_project(&args.project)?;
    let format = ExportFormat::parse(&args.format).with_context(|| {
        format!(
            "unknown format {:?} (jsonl, csv, conll, prodigy, label-studio or doccano)",
            args.format
        )
    })?;
    let local = Principal::local();
    let total = engine.project_summary(&local, project)?.total;
    let bar = progress_bar(
        total,
        "{spinner} exporting [{bar:40}] {pos}/{len} items ({eta})",
    );
    let mut progress = |n: u64| bar.set_position(n);
    let count = match &args.output {
        Some(path) => {
            // Written next to the target and renamed into place: a failed export leaves no
            // half-written file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("writing in {}", dir.display()))?;
            let mut out = std::io::BufWriter::new(tmp.as_file_mut());
            let count =
                engine.export_with_progress(&local, project, format, &mut out, &mut progress)?;
            out.flush()?;
            drop(out);
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            count
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let count =
                engine.export_with_progress(&local, project, format, &mut out, &mut progress)?;
            out.flush()?;
            count
        }
    };
    bar.finish_and_clear();
    eprintln!("exported {count} items");
    Ok(())
}

fn agreement(args: AgreementArgs) -> anyhow::Result<()> {
    use concord::agreement_cli::{compute, format_report, parse_ratings, to_ratings, Level};
    if let Some(path) = &args.ratings {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
        let mut bytes = Vec::new();
        std::io::Read::take(file, concord::agreement_cli::MAX_RATINGS_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {name}"))?;
        if bytes.len() > concord::agreement_cli::MAX_RATINGS_BYTES {
            bail!(
                "{name} is larger than {} MB",
                concord::agreement_cli::MAX_RATINGS_BYTES >> 20
            );
        }
        let table = parse_ratings(&name, &bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let categories: Option<Vec<String>> = args
            .categories
            .map(|list| list.iter().map(|c| c.trim().to_string()).collect());
        let ratings = to_ratings(&table, args.level, categories.as_deref())
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let (report, intervals) = compute(&ratings, args.level);
        if args.json {
            let out = serde_json::json!({
                "raters": table.raters,
                "categories": ratings.labels(),
                "report": report,
                "intervals": intervals,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print!(
                "{}",
                format_report(&report, &intervals, args.level, ratings.labels())
            );
        }
        return Ok(());
    }
    let engine = open(&args.data.data_dir)?;
    let project = engine.find_project(args.project.as_deref().unwrap_or_default())?;
    let figures = engine.agreement(&Principal::local(), project)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    println!(
        "{} of {} items have answers; categories: {}",
        figures.project_items - figures.unannotated_items,
        figures.project_items,
        figures.categories.join(", ")
    );
    print!(
        "{}",
        format_report(
            &figures.report,
            &figures.intervals,
            Level::Nominal,
            &figures.categories
        )
    );
    println!("\nannotators");
    println!(
        "{:20}  {:>6}  {:>12}  {:>10}  {:>10}  {:>8}",
        "name", "items", "s per item", "κ others", "% others", "gold"
    );
    for a in &figures.annotator_stats {
        println!(
            "{:20}  {:>6}  {:>12}  {:>10}  {:>10}  {:>8}",
            a.name,
            a.items,
            a.mean_time_ms
                .map(|ms| format!("{:.1}", ms / 1000.0))
                .unwrap_or_default(),
            a.kappa_with_others
                .value()
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "—".into()),
            a.percent_with_others
                .value()
                .map(|v| format!("{:.1}%", v * 100.0))
                .unwrap_or_else(|| "—".into()),
            if a.gold_answered > 0 {
                format!("{}/{}", a.gold_correct, a.gold_answered)
            } else {
                String::new()
            }
        );
    }
    if let Some(spans) = &figures.spans {
        print!("{}", concord::agreement_cli::format_span_report(spans));
    }
    Ok(())
}
