//! The `novum` command: the controller and its operator tools.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the controller allocates and frees
/// small objects on many threads (tokio workers, sqlx's SQLite workers,
/// the pipeline threads), where glibc's per-thread arenas cost time
/// (`malloc_consolidate`, `_int_malloc` were ~14 % of a server list's
/// samples) and keep freed memory (README, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// novum: an OpenStack-compatible compute controller with WebAssembly policy plugins.
#[derive(Parser)]
#[command(name = "novum", version, about)]
struct Cli {
    /// The TOML configuration file (every key has a default).
    #[arg(long, short, global = true, env = "NOVUM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (all-in-one by default).
    Serve,
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The plugins of a running controller (uses the `OS_*` environment of
    /// `<data_dir>/admin-openrc.sh`).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Why the scheduler placed a request where it did, or found no host
    /// (uses the `OS_*` environment; an admin sees every host, a project
    /// member the summary of its own requests).
    Decision {
        #[command(subcommand)]
        command: DecisionCommand,
    },
    /// What if a request came now: where it would go, how many of the
    /// flavor still fit, why hosts would not take it — claiming nothing;
    /// with --plugins, a candidate plugin set beside the live one and the
    /// differences (admin; uses the `OS_*` environment).
    Plan(PlanArgs),
    /// Identity maintenance.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Rotate the Fernet token keys: the staged key becomes the primary, a new
    /// key is staged, the oldest beyond `max_active_keys` is removed (tokens it
    /// signed stop validating). Running controllers pick the change up.
    RotateKeys,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List the loaded plugins with their metrics.
    List,
    /// Re-read the controller's configuration file and swap the plugin set
    /// (and the shadow's candidate set).
    Reload,
    /// Write a ready-to-build plugin project: a Rust crate on
    /// novum-plugin-sdk, or a Python app.py with its componentize-py build
    /// script (needs no controller).
    New {
        /// The plugin's language.
        #[arg(long, value_enum)]
        lang: novum::plugin_tools::Lang,
        /// What the plugin is.
        #[arg(value_enum)]
        kind: novum::plugin_tools::Kind,
        /// The plugin's name (crate and component name).
        name: String,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust: the novum-plugin-sdk crate to depend on (default: this
        /// novum's source tree).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run a plugin component in the real plugin host and print its answers:
    /// per host of a synthetic cloud (or of recorded decisions' requests)
    /// pass or reject with the reason, or the weights; a quota policy's
    /// answers to sample checks (needs no controller, except to fetch
    /// decisions by request id).
    Test {
        /// The component (.wasm).
        plugin: PathBuf,
        /// Hosts of the synthetic cloud.
        #[arg(long, default_value_t = 10)]
        synthetic: usize,
        /// Seed of the synthetic cloud.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Run the requests of recorded decisions instead of a synthetic one:
        /// a file of `novum decision show ID --json`, a decision URL, or a
        /// request id (fetched with the `OS_*` environment).
        #[arg(long)]
        decisions_from: Option<String>,
        /// The plugin's configuration, `key=value` (repeatable): what
        /// `config = {...}` of its `[plugins.<name>]` table would say.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// vCPUs of the requested flavor.
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// RAM of the requested flavor, MB.
        #[arg(long, default_value_t = 512)]
        ram_mb: u64,
        /// Call deadline, ms (default 1000: a generous bound, so that the
        /// verdicts show even on a busy machine; the calls' times are
        /// printed, to compare with the controller's `deadline_ms`).
        #[arg(long, default_value_t = 1000)]
        deadline_ms: u64,
        /// Memory cap, MiB (default: `[plugins.defaults]`).
        #[arg(long)]
        memory_limit_mib: Option<u64>,
        /// Compiled-plugin cache directory (default: the configuration's).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// The shadow scheduler (`[scheduler.shadow]`).
    Shadow {
        #[command(subcommand)]
        command: ShadowCommand,
    },
}

#[derive(Subcommand)]
enum ShadowCommand {
    /// How often and where the shadow set chose otherwise than production.
    Report {
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// `novum plan`'s arguments.
#[derive(clap::Args)]
struct PlanArgs {
    /// Flavor id or name.
    #[arg(long)]
    flavor: String,
    /// Image id or name.
    #[arg(long)]
    image: String,
    /// Server group uuid.
    #[arg(long)]
    group: Option<String>,
    /// A scheduler hint, `key=value` (repeat the key for a list).
    #[arg(long = "hint", value_parser = parse_key_value)]
    hints: Vec<(String, String)>,
    /// Servers.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Availability zone (`zone` or `zone:host`).
    #[arg(long = "availability-zone")]
    availability_zone: Option<String>,
    /// A candidate plugin set: a TOML file with `[scheduler]` lists and
    /// `[plugins.*]` tables (paths in it are the controller's).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Ranked hosts shown per set.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// How a command prints its answer.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Readable text.
    Table,
    /// The API's JSON.
    Json,
}

/// `key=value` (a scheduler hint, a plugin's configuration key).
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim(), value))
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

/// The text of candidate plugin file `path`, when given.
fn read_plugins(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    path.map(|path| {
        std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))
    })
    .transpose()
}

#[derive(Subcommand)]
enum DecisionCommand {
    /// The decisions of one API request: the request id a server's fault
    /// names (or any `x-openstack-request-id`).
    Show {
        /// The request id.
        request_id: String,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Run a decision again over its kept inputs, with the live plugin set
    /// or a candidate one, and show what changes (admin).
    Replay {
        /// The request id.
        request_id: String,
        /// A candidate plugin set (as `novum plan --plugins`).
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Ranked hosts shown.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Output format.
        #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The newest decisions (admin).
    List {
        /// Decisions per page.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The id of the last decision of the previous page.
        #[arg(long)]
        marker: Option<i64>,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending migrations.
    Migrate,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Scheduler decision time: WASM plugins against the same plugins compiled natively.
    Scheduler {
        /// Cloud sizes (hosts), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        hosts: Vec<usize>,
        /// Time spent per size, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Compiled-plugin cache directory (default: the configuration's,
        /// `<data_dir>/plugin-cache` unless `plugins.cache_dir` is set).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Also print the mean call time of every plugin.
        #[arg(long)]
        per_plugin: bool,
        /// Server group members of the request: a number (the default, 10, is
        /// Nova's default `server_group_members` quota) or `all` for the
        /// synthetic cloud's uncapped groups (~1,500 members at 10,000 hosts).
        #[arg(long, default_value = "10", value_parser = parse_group_members)]
        group_members: GroupMembers,
        /// Each decision also keeps what the decision log needs (as the
        /// controller's do with `[scheduler] decision_log_size` > 0).
        #[arg(long)]
        explain: bool,
        /// Also time the Python port of num-instances-filter (this component,
        /// built by plugins/python/build.sh: target/python-plugins/num-instances-filter.wasm)
        /// against the Rust crate as a component and compiled in: that filter
        /// alone, per decision, side by side at each size.
        #[arg(long)]
        python_filter: Option<PathBuf>,
    },
    /// The whole control plane end to end: the real controller and a
    /// simulated fleet (`novum-agent --simulate N`) as separate processes,
    /// creates through the compute API; decisions/s beside the pipeline-only
    /// rate, POST→ACTIVE, creates/s, RSS and idle CPU.
    Cloud {
        /// Fleet sizes (hosts), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
        hosts: Vec<usize>,
        /// Instances placed before the burst, comma-separated (a run per value).
        #[arg(long, value_delimiter = ',', default_value = "0,50000")]
        instances: Vec<usize>,
        /// Servers one background multi-create asks for.
        #[arg(long, default_value_t = 1000)]
        background_batch: usize,
        /// Background multi-creates being scheduled at once.
        #[arg(long, default_value_t = 8)]
        background_in_flight: usize,
        /// Times each read of the reads table is made.
        #[arg(long, default_value_t = 10)]
        read_runs: usize,
        /// Seconds the notification outbox may take to drain after the
        /// background is placed (then the idle controller is measured anyway).
        #[arg(long, default_value_t = 600.0)]
        drain_seconds: f64,
        /// The controller's JSON-lines notification sink off (events are
        /// still written to the outbox; nothing delivers them).
        #[arg(long)]
        no_notification_log: bool,
        /// Single-server creates in the burst.
        #[arg(long, default_value_t = 500)]
        creates: usize,
        /// Clients creating at once.
        #[arg(long, default_value_t = 24)]
        concurrency: usize,
        /// A fresh PostgreSQL database per run instead of SQLite.
        #[arg(long)]
        postgres: bool,
        /// Seconds of one window of the idle controller's CPU (windows are
        /// measured until two agree: steady state).
        #[arg(long, default_value_t = 10.0)]
        idle_seconds: f64,
        /// Directory of the `novum` and `novum-agent` binaries (default: this one's).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// The controllers' compiled-plugin cache directory.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// The controller's `RUST_LOG` (`warn,sqlx::query=debug`: every
        /// statement with its time).
        #[arg(long, default_value = "warn")]
        controller_log: String,
        /// Copy each run's controller and fleet logs into this directory.
        #[arg(long)]
        keep_logs: Option<PathBuf>,
    },
    /// What a decision pays to know the cloud: the whole read from the
    /// database against the in-memory host state after one placement, on a
    /// fresh SQLite database per size.
    HostState {
        /// Cloud sizes (hosts), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
        hosts: Vec<usize>,
        /// Live instances on each host.
        #[arg(long, default_value_t = 5)]
        instances_per_host: usize,
        /// Time spent on each figure per size, in seconds.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
}

/// The path of a decision of `request_id` (the id percent-encoded as one
/// path segment).
fn decision_path(request_id: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse("http://novum/novum/v1/decisions")?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("decision URL cannot take a path"))?
        .push(request_id);
    Ok(url.path().to_string())
}

/// `--group-members`: a cap, or none.
#[derive(Clone, Copy, Debug)]
struct GroupMembers(Option<usize>);

fn parse_group_members(text: &str) -> Result<GroupMembers, String> {
    if text == "all" {
        return Ok(GroupMembers(None));
    }
    text.parse::<usize>()
        .map(|members| GroupMembers(Some(members)))
        .map_err(|_| format!("`{text}` is neither a number nor `all`"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Bench(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .init();
    let config = novum_config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => novum::server::run(config).await,
        Command::Db {
            command: DbCommand::Migrate,
        } => {
            std::fs::create_dir_all(&config.data_dir)?;
            novum_db::Db::open(&config.database_url()).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Bench(BenchCommand::Scheduler {
            hosts,
            seconds,
            cache_dir,
            per_plugin,
            group_members,
            explain,
            python_filter,
        }) => {
            let cache_dir = cache_dir.unwrap_or_else(|| config.plugin_cache_dir());
            let engine = novum_plugin_host::PluginEngine::new(cache_dir)?;
            let rows = tokio::task::block_in_place(|| {
                novum_scheduler::bench::run(
                    &hosts,
                    &engine,
                    Duration::from_secs_f64(seconds),
                    group_members.0,
                    explain,
                )
            })?;
            match group_members.0 {
                Some(members) => println!(
                    "request: server group capped at {members} members (Nova's default \
                     server_group_members quota is 10; --group-members all for the \
                     uncapped synthetic groups)"
                ),
                None => println!(
                    "request: uncapped synthetic server group (stress case; Nova's default \
                     server_group_members quota is 10)"
                ),
            }
            if explain {
                println!("each decision keeps what the decision log needs (--explain)");
            }
            print!("{}", novum_scheduler::bench::format(&rows));
            if per_plugin {
                print!("{}", novum_scheduler::bench::format_plugins(&rows));
            }
            if let Some(python) = python_filter {
                let filter = "num-instances-filter";
                let rows = tokio::task::block_in_place(|| {
                    novum_scheduler::bench::filter_costs(
                        &hosts,
                        &engine,
                        Duration::from_secs_f64(seconds),
                        filter,
                        &python,
                    )
                })?;
                print!(
                    "{}",
                    novum_scheduler::bench::format_filter_costs(filter, &rows)
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Cloud {
            hosts,
            instances,
            background_batch,
            background_in_flight,
            read_runs,
            drain_seconds,
            no_notification_log,
            creates,
            concurrency,
            postgres,
            idle_seconds,
            bin_dir,
            cache_dir,
            controller_log,
            keep_logs,
        }) => {
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => std::env::current_exe()?
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default(),
            };
            let options = novum::bench_cloud::CloudBenchOptions {
                hosts,
                background: instances,
                background_batch,
                background_in_flight,
                read_runs,
                drain_seconds,
                no_notification_log,
                creates,
                concurrency,
                postgres,
                bin_dir,
                idle_seconds,
                plugin_cache: cache_dir,
                controller_log,
                keep_logs,
            };
            let rows = novum::bench_cloud::run(&options).await?;
            println!(
                "{}, controller and simulated fleet as two processes; background in multi-creates of \
                 {background_batch}, {background_in_flight} at once; {creates} creates from {concurrency} clients; \
                 reads as the admin, {read_runs} runs each{}",
                if postgres { "PostgreSQL" } else { "SQLite" },
                if no_notification_log {
                    "; notification log sink off"
                } else {
                    ""
                }
            );
            print!("{}", novum::bench_cloud::format(&rows));
            Ok(())
        }
        Command::Bench(BenchCommand::HostState {
            hosts,
            instances_per_host,
            seconds,
        }) => {
            let mut rows = Vec::new();
            for size in hosts {
                let dir = std::env::temp_dir().join(format!("novum-bench-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(format!("host-state-{size}.db"));
                let _ = std::fs::remove_file(&path);
                let db =
                    novum_db::Db::open(&format!("sqlite://{}?mode=rwc", path.display())).await?;
                let row = novum_compute::bench::host_state(
                    &db,
                    size,
                    instances_per_host,
                    Duration::from_secs_f64(seconds),
                )
                .await;
                db.close().await;
                let _ = std::fs::remove_dir_all(&dir);
                rows.push(row?);
            }
            println!(
                "SQLite, one controller; a placement = a node's usage bumped and an instance put on it"
            );
            print!("{}", novum_compute::bench::format(&rows));
            Ok(())
        }
        Command::Plugin { command } => {
            let (method, path) = match command {
                PluginCommand::List => (reqwest::Method::GET, "/novum/v1/plugins"),
                PluginCommand::Reload => (reqwest::Method::POST, "/novum/v1/plugins/reload"),
                PluginCommand::Shadow {
                    command: ShadowCommand::Report { json },
                } => {
                    let client = novum::admin_client::AdminClient::from_env().await?;
                    let body = client
                        .call(reqwest::Method::GET, "/novum/v1/scheduling/shadow")
                        .await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&body)?);
                    } else {
                        print!("{}", novum::admin_client::format_shadow(&body));
                    }
                    return Ok(());
                }
                PluginCommand::New {
                    lang,
                    kind,
                    name,
                    dir,
                    sdk,
                } => return plugin_new(lang, kind, &name, dir, sdk),
                PluginCommand::Test {
                    plugin,
                    synthetic,
                    seed,
                    decisions_from,
                    set,
                    vcpus,
                    ram_mb,
                    deadline_ms,
                    memory_limit_mib,
                    cache_dir,
                } => {
                    let options = novum::plugin_tools::test::TestOptions {
                        plugin,
                        hosts: synthetic,
                        seed,
                        config: set,
                        vcpus,
                        ram_mb,
                        deadline_ms: Some(deadline_ms),
                        memory_limit_mib: memory_limit_mib
                            .or(Some(config.plugins.defaults.memory_limit_mib)),
                    };
                    let cache_dir = cache_dir.unwrap_or_else(|| config.plugin_cache_dir());
                    return plugin_test(&options, decisions_from.as_deref(), cache_dir).await;
                }
            };
            let client = novum::admin_client::AdminClient::from_env().await?;
            let body = client.call(method, path).await?;
            print!("{}", novum::admin_client::format_plugins(&body));
            Ok(())
        }
        Command::Decision { command } => {
            let client = novum::admin_client::AdminClient::from_env().await?;
            match command {
                DecisionCommand::Show { request_id, json } => {
                    let body = client
                        .call(reqwest::Method::GET, &decision_path(&request_id)?)
                        .await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&body)?);
                    } else {
                        print!("{}", novum::admin_client::format_decisions(&body));
                    }
                }
                DecisionCommand::Replay {
                    request_id,
                    plugins,
                    top,
                    format,
                } => {
                    let body = serde_json::json!({"replay": {
                        "plugins": read_plugins(plugins.as_deref())?,
                        "top": top,
                    }});
                    let answer = client
                        .call_with(
                            reqwest::Method::POST,
                            &format!("{}/replay", decision_path(&request_id)?),
                            Some(&body),
                        )
                        .await?;
                    match format {
                        Format::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
                        Format::Table => print!("{}", novum::admin_client::format_replays(&answer)),
                    }
                }
                DecisionCommand::List { limit, marker } => {
                    let mut path = format!("/novum/v1/decisions?limit={limit}");
                    if let Some(marker) = marker {
                        path.push_str(&format!("&marker={marker}"));
                    }
                    let body = client.call(reqwest::Method::GET, &path).await?;
                    print!("{}", novum::admin_client::format_decision_list(&body));
                }
            }
            Ok(())
        }
        Command::Plan(args) => {
            let client = novum::admin_client::AdminClient::from_env().await?;
            let image = client.image_id(&args.image).await?;
            let mut hints: std::collections::BTreeMap<String, Vec<String>> =
                std::collections::BTreeMap::new();
            for (key, value) in args.hints {
                hints.entry(key).or_default().push(value);
            }
            let body = serde_json::json!({"plan": {
                "flavor": args.flavor,
                "image": image,
                "group": args.group,
                "hints": hints,
                "count": args.count,
                "availability_zone": args.availability_zone,
                "top": args.top,
                "plugins": read_plugins(args.plugins.as_deref())?,
            }});
            let answer = client
                .call_with(
                    reqwest::Method::POST,
                    "/novum/v1/scheduling/plan",
                    Some(&body),
                )
                .await?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
                Format::Table => print!("{}", novum::admin_client::format_plan(&answer)),
            }
            Ok(())
        }
        Command::Identity {
            command: IdentityCommand::RotateKeys,
        } => {
            let config = novum_config::Config::load(cli.config.as_deref())?;
            let dir = config.identity.key_repository(&config.data_dir);
            novum_identity::keys::setup(&dir)?;
            let primary = novum_identity::keys::rotate(&dir, config.identity.max_active_keys)?;
            println!(
                "rotated the Fernet keys in {}: primary key is now {primary}, keys present: {:?}",
                dir.display(),
                novum_identity::keys::key_indices(&dir)?
            );
            Ok(())
        }
    }
}

/// `novum plugin new`.
fn plugin_new(
    lang: novum::plugin_tools::Lang,
    kind: novum::plugin_tools::Kind,
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk.unwrap_or_else(novum::plugin_tools::new::default_sdk_path);
    let (files, build) = novum::plugin_tools::new::write_project(lang, kind, name, &dir, &sdk)?;
    for file in files {
        println!("wrote {}", file.display());
    }
    println!("build it: {build}");
    Ok(())
}

/// `novum plugin test`.
async fn plugin_test(
    options: &novum::plugin_tools::test::TestOptions,
    decisions_from: Option<&str>,
    cache_dir: PathBuf,
) -> anyhow::Result<()> {
    let decisions = match decisions_from {
        Some(source) => novum::plugin_tools::test::decisions_from(source).await?,
        None => Vec::new(),
    };
    let engine = novum_plugin_host::PluginEngine::new(cache_dir)?;
    let text = tokio::task::block_in_place(|| {
        let plugin = novum::plugin_tools::test::load(&engine, options)?;
        novum::plugin_tools::test::run(&plugin, options, &decisions)
    })?;
    print!("{text}");
    Ok(())
}
