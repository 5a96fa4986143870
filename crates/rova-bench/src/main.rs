//! `rova-bench`: benchmarks a release build of `rova serve` end to end over
//! HTTP — start-up time, servers created to ACTIVE per second, POST latency,
//! list latency by query, and the server's RSS — for one or more fleet sizes,
//! with a fresh server per size. Prints a table and can write a markdown
//! section (see `--markdown`). `--guests N` runs the real-guest benchmark
//! (QEMU driver) instead; see `guest/mod.rs`. `--volumes N` runs the
//! block-storage benchmark instead; see `volumes.rs`. `--burst URL,…`
//! creates servers in a cloud already running (the multi-host harness's
//! replicas); see `burst.rs`.

mod burst;
mod client;
mod guest;
mod report;
mod server;
mod stats;
mod volumes;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Benchmark a release build of `rova serve` over HTTP.
#[derive(Parser, Debug, Clone)]
#[command(name = "rova-bench", version)]
pub struct Args {
    /// The rova binary (default: `rova` beside this binary, else
    /// target/release/rova).
    #[arg(long)]
    pub rova: Option<PathBuf>,
    /// Fleet sizes to run, each against a freshly started server.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub servers: Vec<usize>,
    /// POSTs in flight at once during the create phase.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Timed requests per list query.
    #[arg(long, default_value_t = 50)]
    pub list_iterations: usize,
    /// Sequential (concurrency 1) POSTs after the lists, for unloaded latency
    /// (0 skips).
    #[arg(long, default_value_t = 200)]
    pub probe: usize,
    /// Servers taken through pause → PAUSED → unpause → ACTIVE (0 skips).
    #[arg(long, default_value_t = 1000)]
    pub actions: usize,
    /// Servers going through their action round trip at once.
    #[arg(long, default_value_t = 16)]
    pub action_concurrency: usize,
    /// Passed to `rova serve --sim-latency-ms` (default: the server's own).
    #[arg(long)]
    pub sim_latency_ms: Option<u64>,
    /// Give up waiting for ACTIVE after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Append this run's section to FILE, replacing an earlier section with
    /// the same --label.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Name of the markdown section (with --guests, `latest` becomes
    /// `guests`, so the simulated section is never replaced by accident).
    #[arg(long, default_value = "latest")]
    pub label: String,
    /// A line to add to the markdown section (repeatable).
    #[arg(long)]
    pub note: Vec<String>,
    /// Keep the tables on PostgreSQL instead of the embedded SQLite: each
    /// fleet gets a fresh database on the server this superuser URL
    /// reaches (created with `psql`), e.g. the URL `scripts/pg.sh start
    /// DIR --durable` prints.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Keep each run's data directory and server log.
    #[arg(long)]
    pub keep: bool,
    /// Run the real-guest benchmark instead (only it): `rova serve --driver
    /// qemu --qemu-hosts 2`, N test guests booted one by one, 2 at once,
    /// RSS, live migrations. `--guests` alone means 4; 0 (default) is off.
    #[arg(long, value_name = "N", default_value_t = 0, num_args = 0..=1, default_missing_value = "4")]
    pub guests: usize,
    /// Run the block-storage benchmark instead (only it): N blank and N
    /// image volumes created → available, N servers booted from an image
    /// and N from a volume → ACTIVE, one at a time. 0 (default) is off.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub volumes: usize,
    /// Create servers in a running cloud instead, POSTs spread over these
    /// control replicas (`http://ADDR:PORT`, comma-separated): the first
    /// size of --servers, --concurrency in flight, `networks: none`; prints
    /// one JSON line. Needs --cloud-data.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub burst: Vec<String>,
    /// With --burst: the cloud's data directory (its `passwords.json`).
    #[arg(long, value_name = "DIR")]
    pub cloud_data: Option<PathBuf>,
    /// With --burst: the flavor of the servers.
    #[arg(long, default_value = "42")]
    pub flavor: String,
    /// With --burst: the servers' name prefix (`PREFIX-00000`…).
    #[arg(long, default_value = "burst")]
    pub prefix: String,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.guests > 0 && args.label == "latest" {
        args.label = "guests".into();
    }
    if args.volumes > 0 && args.label == "latest" {
        args.label = "volumes".into();
    }
    // One client thread: the server gets the rest of the (small) machine.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rova-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rova-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rova_path(args: &Args) -> PathBuf {
    if let Some(p) = &args.rova {
        return p.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("rova")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("target/release/rova"))
}

async fn run(args: Args) -> Result<(), String> {
    if args.servers.is_empty() || args.servers.contains(&0) {
        return Err("--servers needs one or more sizes > 0".into());
    }
    if !args.burst.is_empty() {
        return burst::run(&args).await;
    }
    let rova = rova_path(&args);
    if !rova.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p rova` or pass --rova",
            rova.display()
        ));
    }
    if args.guests > 0 {
        return guest::run(&args, &rova).await;
    }
    if args.volumes > 0 {
        return volumes::run(&args, &rova).await;
    }
    let machine = report::Machine::probe(&rova);
    println!("{}", machine.describe());
    let mut runs = Vec::new();
    for (idx, &n) in args.servers.iter().enumerate() {
        println!("\n== N = {n}: starting a fresh server ({})", rova.display());
        let r = bench_one(&args, &rova, n, idx).await?;
        report::print_run(&r, &args);
        runs.push(r);
    }
    println!();
    println!("{}", report::text_table(&runs, &args));
    if let Some(path) = &args.markdown {
        let section = report::markdown_section(&runs, &args, &machine);
        report::write_markdown(path, &args.label, &section)?;
        println!("wrote section '{}' to {}", args.label, path.display());
    }
    Ok(())
}

/// Everything measured for one fleet size.
pub struct RunResult {
    pub n: usize,
    pub load_before: String,
    pub startup: server::Startup,
    pub creates: client::Creates,
    pub create_cpu: report::CpuUse,
    pub rss_after_creates_kib: Option<u64>,
    pub lists: Vec<client::ListRun>,
    /// `GET /servers/{id}` latencies, one request at a time.
    pub shows: Vec<Duration>,
    pub list_cpu: report::CpuUse,
    pub rss_after_lists_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub probe: Option<client::Posts>,
    /// pause → PAUSED → unpause → ACTIVE round trips (per server).
    pub actions: Vec<Duration>,
    /// A second start on the same data directory, with the servers stored.
    pub restart: Option<server::Startup>,
    pub rss_after_restart_kib: Option<u64>,
    pub server_log: Option<String>,
}

/// Creates a database of its own for one run on the PostgreSQL server
/// `admin_url` reaches; returns its URL.
fn fresh_database(admin_url: &str, tag: &str) -> Result<String, String> {
    let name = format!(
        "rova_bench_{}_{}",
        tag.replace('-', "_"),
        std::process::id()
    );
    let out = std::process::Command::new("psql")
        .args([admin_url, "-qAt", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "creating database {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

async fn bench_one(
    args: &Args,
    rova: &std::path::Path,
    n: usize,
    idx: usize,
) -> Result<RunResult, String> {
    let load_before = report::loadavg();
    let http = client::http_client(args.concurrency.max(8))?;
    let tag = format!("n{n}-{idx}");
    let database = match &args.postgres {
        Some(url) => Some(fresh_database(url, &tag)?),
        None => None,
    };
    let env: Vec<(&str, &str)> = database
        .iter()
        .map(|d| ("ROVA_DATABASE_URL", d.as_str()))
        .collect();
    let launch = server::Launch {
        rova,
        sim_latency_ms: args.sim_latency_ms,
        run_tag: &tag,
        capacity: n + args.probe,
        reuse: None,
        extra_args: &[],
        extra_env: &env,
    };
    let (srv, startup) = server::start(&launch, &http).await?;
    let result = measure(args, &srv, &http, n, load_before, startup).await;
    if result.is_err() {
        srv.stop(args.keep).await;
        return result;
    }
    let work = srv.work.clone();
    let log = srv.stop(true).await;
    let mut r = result?;
    r.server_log = log;

    // Start again on the same data directory: loading N stored servers.
    let relaunch = server::Launch {
        reuse: Some(&work),
        ..launch
    };
    let (srv, restart) = server::start(&relaunch, &http).await?;
    r.restart = Some(restart);
    r.rss_after_restart_kib = srv.rss_kib();
    if let Some(log) = srv.stop(args.keep).await {
        r.server_log = Some(format!("{}{log}", r.server_log.take().unwrap_or_default()));
    }
    Ok(r)
}

async fn measure(
    args: &Args,
    srv: &server::Server,
    http: &reqwest::Client,
    n: usize,
    load_before: String,
    startup: server::Startup,
) -> Result<RunResult, String> {
    let password = client::password_of(&srv.data_dir, "admin")?;
    let token = client::login(http, &srv.base, "admin", &password, "admin").await?;
    let api = client::Api {
        http: http.clone(),
        base: srv.base.clone(),
        token,
    };
    let image = api.image_id().await?;
    api.check_flavor("1").await?;
    let networks = api.networks_for(n + args.probe).await?;

    let cpu0 = report::CpuSnap::take(srv.pid);
    let creates = client::create_servers(
        &api,
        &image,
        "1",
        &networks,
        n,
        args.concurrency,
        Duration::from_secs(args.timeout_secs),
    )
    .await?;
    let cpu1 = report::CpuSnap::take(srv.pid);
    let rss_after_creates_kib = srv.rss_kib();
    if creates.posts.failed > 0 {
        eprintln!(
            "rova-bench: {} POSTs failed, e.g. {:?}",
            creates.posts.failed, creates.posts.failures
        );
    }

    let k = args.list_iterations;
    let mut lists = Vec::new();
    for (label, query) in report::LIST_QUERIES {
        lists.push(client::time_list(&api, label, query, k).await?);
    }
    // One server at a time, spread over a page of them (the last created).
    let shown = client::server_ids(&api, 1000).await?;
    let shows = client::time_show(&api, &shown, k * 20).await?;
    let cpu2 = report::CpuSnap::take(srv.pid);
    let rss_after_lists_kib = srv.rss_kib();
    let peak_rss_kib = srv.peak_rss_kib();

    let probe = if args.probe > 0 {
        Some(
            client::post_servers(
                std::slice::from_ref(&api),
                &image,
                "1",
                &networks,
                "probe",
                args.probe,
                1,
            )
            .await?,
        )
    } else {
        None
    };
    let actions = if args.actions > 0 {
        let ids = client::server_ids(&api, args.actions).await?;
        client::action_round_trips(&api, ids, args.action_concurrency).await?
    } else {
        Vec::new()
    };
    Ok(RunResult {
        n,
        load_before,
        startup,
        creates,
        create_cpu: report::CpuUse::between(&cpu0, &cpu1),
        rss_after_creates_kib,
        lists,
        shows,
        list_cpu: report::CpuUse::between(&cpu1, &cpu2),
        rss_after_lists_kib,
        peak_rss_kib,
        probe,
        actions,
        restart: None,
        rss_after_restart_kib: None,
        server_log: None,
    })
}
