//! `teleport-discord demo`: the service, unchanged, against the built-in
//! Teleport and Discord emulators, playing a short scripted story.
//!
//! What runs:
//! - the Teleport emulator over real mutual TLS, its identity file written to
//!   a fresh temporary directory (removed on exit);
//! - the Discord emulator with Discord's rate limits (5 new messages per 5 s
//!   per channel), channels `#dev`, `#ops` and `#fallback`;
//! - the service through the [`Service`] the binary hands over (the same
//!   code as `teleport-discord start`), with its HTTP surface on a loopback
//!   port;
//! - a small web page of the emulated channels ([`page`]), where the Approve
//!   and Deny buttons work (clicked as the demo's reviewer, [`REVIEWER`]),
//!   and the Teleport emulator's control API under `/teleport/` on the demo
//!   port.
//!
//! Reviews from Discord are on (`[review] enabled = true`): the Discord
//! emulator's Interactions Endpoint URL is the service's
//! `/discord/interactions`, the Discord user [`REVIEWER`] is mapped by
//! `[review.users]` to the Teleport user [`REVIEWER_TELEPORT`] (who may review
//! every role and requests nothing), and the plugin's Teleport role may
//! submit reviews for users.
//!
//! Direct messages are on too: `[notify] requester = true`, and the story's
//! requesters ([`REQUESTERS`]) are Discord users mapped by the Teleport user
//! trait `discord_user_id`, so each hears by DM when a request resolves. The
//! access list [`ACCESS_LIST`] (owner [`REVIEWER_TELEPORT`], found through
//! `[review.users]` read backwards) is due for review in
//! [`ACCESS_LIST_DUE_DAYS`] days, inside its reminder window, and
//! `[access_list] interval` is short ([`REMINDER_INTERVAL`],
//! [`FAST_REMINDER_INTERVAL`] with `--fast`), so the reminder arrives during
//! the story.
//!
//! The [`transcript`] polls the Discord emulator and prints every new message
//! and edit, in the channels and in the DM channels of the demo's users; the [`story`] drives Teleport and waits, step by step, until the
//! transcript has shown the state it expects, so a run that exits 0 has seen
//! every expected message state (which makes `demo --fast` a smoke test).

mod page;
mod story;
mod transcript;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::discord::{DiscordEmulator, EmulatorConfig};
use crate::sandbox::Sandbox;
use crate::teleport::TeleportEmulator;
use crate::util::{TempDir, lock};

/// Where the demo page listens unless told otherwise (a free port when taken).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Requests in the rate-limit burst (with `--fast`: [`FAST_BURST`]).
pub const DEFAULT_BURST: u32 = 12;
/// Requests in the burst of a `--fast` run: still more than one window of 5.
pub const FAST_BURST: u32 = 7;

/// Appended to the emulators' config: any free port, so a second replica
/// started by hand with the same file does not collide.
const CONFIG_EXTRA: &str = "\n[http]\nlisten_addr = \"127.0.0.1:0\"\n";

/// The demo's reviewer on Discord: the story's Discord step and the page's
/// clicks are hers.
pub const REVIEWER: &str = "carol";
/// The Teleport user [`REVIEWER`] is mapped to (`[review.users]`).
pub const REVIEWER_TELEPORT: &str = "carol@example.com";

/// The story's requesters who hear by DM: (Discord user name, Teleport
/// user), mapped by the Teleport user trait `discord_user_id`.
pub const REQUESTERS: [(&str, &str); 3] = [
    ("alice", "alice@example.com"),
    ("dave", "dave@example.com"),
    ("grace", "grace@example.com"),
];

/// The Teleport user trait holding a user's Discord user ID (the service's
/// default `[review] discord_user_id_trait`).
pub const DISCORD_USER_TRAIT: &str = "discord_user_id";

/// The demo's access list (owned by [`REVIEWER_TELEPORT`]).
pub const ACCESS_LIST: &str = "prod-admins";
/// Its title.
pub const ACCESS_LIST_TITLE: &str = "Production admins";
/// Days until its review is due.
pub const ACCESS_LIST_DUE_DAYS: u32 = 3;
/// Days before the due date its reminders start (the window is open).
pub const ACCESS_LIST_NOTIFY_DAYS: u32 = 7;

/// `[access_list] interval`: the first reminder pass runs within it.
pub const REMINDER_INTERVAL: &str = "3s";
/// `[access_list] interval` with `--fast`.
pub const FAST_REMINDER_INTERVAL: &str = "1s";

/// A demo user who gets DMs: who they are on both sides, and how the
/// service finds one from the other.
#[derive(Debug, Clone)]
pub(crate) struct DmUser {
    /// Discord user name.
    pub(crate) name: String,
    /// Discord user ID (a snowflake).
    pub(crate) discord_id: String,
    /// The Teleport user.
    pub(crate) teleport_user: String,
    /// How the service maps the Teleport user to the Discord user.
    pub(crate) mapped_by: String,
}

/// The demo's reviewer, as the page and the story click.
#[derive(Debug, Clone)]
pub(crate) struct Reviewer {
    /// Discord user name.
    pub(crate) name: String,
    /// Discord user ID (a snowflake).
    pub(crate) discord_id: String,
    /// The Teleport user the service reviews as.
    pub(crate) teleport_user: String,
}

/// Sets up [`REVIEWER`] on both sides: a Discord user, and a Teleport user
/// allowed to review every role (and the plugin allowed to review for her).
fn add_reviewer(teleport: &TeleportEmulator, discord: &DiscordEmulator) -> Reviewer {
    let discord_id = discord.add_user(REVIEWER);
    teleport.set_permissions(crate::teleport::Permissions {
        submit_reviews_for_users: true,
        ..crate::teleport::Permissions::default()
    });
    teleport.put_user(REVIEWER_TELEPORT, &["reviewer"], &[]);
    teleport.put_user_reviews(REVIEWER_TELEPORT, &["*"]);
    Reviewer {
        name: REVIEWER.to_owned(),
        discord_id,
        teleport_user: REVIEWER_TELEPORT.to_owned(),
    }
}

/// Sets up [`REQUESTERS`]: a Discord user each, and a Teleport user whose
/// trait [`DISCORD_USER_TRAIT`] holds the Discord user ID.
fn add_requesters(teleport: &TeleportEmulator, discord: &DiscordEmulator) -> Vec<DmUser> {
    REQUESTERS
        .iter()
        .map(|(name, teleport_user)| {
            let discord_id = discord.add_user(name);
            teleport.put_user(
                teleport_user,
                &["requester"],
                &[(DISCORD_USER_TRAIT, &[discord_id.as_str()])],
            );
            DmUser {
                name: (*name).to_owned(),
                discord_id,
                teleport_user: (*teleport_user).to_owned(),
                mapped_by: format!("user trait {DISCORD_USER_TRAIT}"),
            }
        })
        .collect()
}

/// The reviewer as a user who gets DMs (the access list reminder).
fn reviewer_dms(reviewer: &Reviewer) -> DmUser {
    DmUser {
        name: reviewer.name.clone(),
        discord_id: reviewer.discord_id.clone(),
        teleport_user: reviewer.teleport_user.clone(),
        mapped_by: "[review.users]".to_owned(),
    }
}

/// Puts [`ACCESS_LIST`] in Teleport: owned by [`REVIEWER_TELEPORT`], due in
/// [`ACCESS_LIST_DUE_DAYS`] days, reminders from
/// [`ACCESS_LIST_NOTIFY_DAYS`] days before (so now).
fn add_access_list(teleport: &TeleportEmulator) {
    let day = Duration::from_secs(24 * 3600);
    teleport.put_access_list(
        ACCESS_LIST,
        ACCESS_LIST_TITLE,
        &[REVIEWER_TELEPORT],
        SystemTime::now() + day * ACCESS_LIST_DUE_DAYS,
        day * ACCESS_LIST_NOTIFY_DAYS,
    );
}

/// `[access_list] interval` for a run.
fn reminder_interval(fast: bool) -> &'static str {
    if fast {
        FAST_REMINDER_INTERVAL
    } else {
        REMINDER_INTERVAL
    }
}

/// What the demo appends to the emulators' config: [`CONFIG_EXTRA`],
/// reviews from Discord with `reviewer` in `[review.users]`, DMs to
/// requesters, and access list reminders every `interval`.
fn config_extra(reviewer: &Reviewer, interval: &str) -> String {
    format!(
        "{CONFIG_EXTRA}\n[review]\nenabled = true\n\n[review.users]\n\"{}\" = \"{}\"\n\n[notify]\nrequester = true\n\n[access_list]\nreminders = true\ninterval = \"{interval}\"\n",
        reviewer.discord_id, reviewer.teleport_user
    )
}

/// How `demo` runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Leave everything up after the story, until Ctrl-C or SIGTERM.
    pub keep_running: bool,
    /// No pauses between steps and a smaller burst (tests, CI).
    pub fast: bool,
    /// The demo page's address; `None`: [`DEFAULT_LISTEN`], or any free port if taken.
    pub listen: Option<SocketAddr>,
    /// Requests in the burst; `None`: [`DEFAULT_BURST`] ([`FAST_BURST`] with `fast`).
    pub burst: Option<u32>,
    /// Also write the service's log to stderr.
    pub verbose: bool,
}

/// The service `demo` runs, handed over by the binary (so the testkit needs
/// no dependency on the product): `teleport-discord start`'s code.
pub trait Service: Send + Sync + 'static {
    /// How long the service may take to stop once told to.
    fn shutdown_grace(&self) -> Duration;
    /// Loads the config file at `config` with no environment overrides (a
    /// token meant for a real deployment must not leak into the demo) and
    /// returns the service running on `listener` until `stop` is cancelled;
    /// with `verbose` its log goes to stderr. `Err` says why it cannot start.
    fn start(
        &self,
        config: &Path,
        listener: TcpListener,
        stop: CancellationToken,
        verbose: bool,
    ) -> Result<ServiceRun, String>;
}

/// A running service: resolves when it stops, with why it failed.
pub type ServiceRun = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Exit code of a demo that did not complete.
pub const EXIT_FAILURE: i32 = 1;

/// Why the demo did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The temporary directory.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
    /// An emulator did not start.
    #[error("cannot start the emulators: {0}")]
    Emulators(std::io::Error),
    /// A listener.
    #[error("cannot listen on {addr}: {source} (pick another address with --listen)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The service refused the generated config or could not set up (a bug).
    #[error("the service does not start: {0}")]
    Start(String),
    /// The service failed.
    #[error("the service stopped: {0}")]
    Service(String),
    /// The service ended while it should have been running.
    #[error("the service stopped unexpectedly")]
    ServiceEnded,
    /// The service never answered `/readyz` with 200.
    #[error("the service was not ready within {0} s")]
    NotReady(u64),
    /// An emulator call was refused.
    #[error("the Teleport emulator refused a call: {0}")]
    Teleport(#[from] crate::teleport::EmulatorError),
    /// A step's expected state was not seen in time, or the final check failed.
    #[error("the story did not complete: {0}")]
    Story(String),
    /// Ctrl-C or SIGTERM before the story completed.
    #[error("interrupted before the story completed")]
    Interrupted,
}

impl DemoError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Interrupted => 130,
            _ => EXIT_FAILURE,
        }
    }
}

/// The terminal transcript: lines to stdout, flushed at once, with the time
/// since the demo started on event lines.
#[derive(Clone)]
pub(crate) struct Out {
    start: Instant,
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out").finish_non_exhaustive()
    }
}

impl Out {
    fn stdout() -> Self {
        Self {
            start: Instant::now(),
            sink: Arc::new(Mutex::new(Box::new(std::io::stdout()))),
        }
    }

    /// A plain line.
    pub(crate) fn line(&self, text: &str) {
        let mut w = lock(&self.sink);
        let _ = writeln!(w, "{text}");
        let _ = w.flush();
    }

    /// A line prefixed with the seconds since the start.
    pub(crate) fn event(&self, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.line(&format!("{t:>7.2}s  {text}"));
    }
}

/// Runs the demo: the story, then (with `keep_running`) until Ctrl-C or
/// SIGTERM. Everything it wrote is removed before it returns.
pub async fn run(options: Options, service: Arc<dyn Service>) -> Result<(), DemoError> {
    let out = Out::stdout();
    let dir = TempDir::create_for("demo").map_err(DemoError::TempDir)?;
    let result = run_in(&options, &*service, dir.path(), &out).await;
    let shown = dir.path().display().to_string();
    drop(dir);
    out.line(&format!("removed {shown}"));
    result
}

/// Everything that runs, for the story and for shutdown.
struct Running {
    teleport: Arc<TeleportEmulator>,
    discord: Arc<DiscordEmulator>,
    channels: Vec<(String, String)>,
    service: tokio::task::JoinHandle<Result<(), String>>,
    service_addr: SocketAddr,
    page_addr: SocketAddr,
    config_path: PathBuf,
    snapshots: tokio::sync::watch::Receiver<Arc<transcript::Snapshot>>,
    reviewer: Reviewer,
    dm_users: Vec<DmUser>,
    stop_service: CancellationToken,
    stop_demo: CancellationToken,
}

/// [`DEFAULT_LISTEN`] as an address.
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

async fn bind_page(listen: Option<SocketAddr>) -> Result<TcpListener, DemoError> {
    let addr = listen.unwrap_or_else(default_listen);
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if listen.is_none() && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(addr.ip(), 0);
            TcpListener::bind(any)
                .await
                .map_err(|source| DemoError::Listen { addr: any, source })
        }
        Err(source) => Err(DemoError::Listen { addr, source }),
    }
}

async fn start(
    options: &Options,
    service: &dyn Service,
    dir: &Path,
    out: &Out,
) -> Result<Running, DemoError> {
    let sandbox = Sandbox::start(dir, EmulatorConfig::default())
        .await
        .map_err(DemoError::Emulators)?;
    let reviewer = add_reviewer(&sandbox.teleport, &sandbox.discord);
    let mut dm_users = add_requesters(&sandbox.teleport, &sandbox.discord);
    dm_users.insert(0, reviewer_dms(&reviewer));
    add_access_list(&sandbox.teleport);
    let config_path = sandbox
        .write_config(&config_extra(&reviewer, reminder_interval(options.fast)))
        .map_err(DemoError::Emulators)?;
    let (teleport, discord, ids) = sandbox.into_parts();
    let (teleport, discord) = (Arc::new(teleport), Arc::new(discord));
    let names = ["dev", "ops", "fallback"];
    let channels: Vec<(String, String)> = names
        .iter()
        .zip(ids)
        .map(|(n, id)| ((*n).to_owned(), id))
        .collect();

    let stop_demo = CancellationToken::new();
    let snapshots = transcript::spawn(
        discord.clone(),
        channels.clone(),
        dm_users.clone(),
        out.clone(),
        stop_demo.clone(),
    );

    let page_listener = bind_page(options.listen).await?;
    let page_addr = page_listener
        .local_addr()
        .map_err(|source| DemoError::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
    let service_any = SocketAddr::from(([127, 0, 0, 1], 0));
    let service_listener =
        TcpListener::bind(service_any)
            .await
            .map_err(|source| DemoError::Listen {
                addr: service_any,
                source,
            })?;
    let service_addr = service_listener
        .local_addr()
        .map_err(|source| DemoError::Listen {
            addr: service_any,
            source,
        })?;

    // Discord delivers clicks and modal submits there (the listener is
    // bound: connections wait for the service to accept them).
    discord.set_interactions_endpoint(&format!("http://{service_addr}/discord/interactions"));

    let info = page::PageInfo {
        service: format!("http://{service_addr}"),
        bot_name: EmulatorConfig::default().bot_name,
        reviewer: reviewer.clone(),
    };
    let router = page::router(snapshots.clone(), info, discord.clone()).nest(
        "/teleport",
        crate::teleport::control::router(teleport.clone()),
    );
    let stop = stop_demo.clone();
    tokio::spawn(async move {
        let _ = axum::serve(page_listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });

    let stop_service = CancellationToken::new();
    let run = service
        .start(
            &config_path,
            service_listener,
            stop_service.clone(),
            options.verbose,
        )
        .map_err(DemoError::Start)?;
    let service = tokio::spawn(run);
    Ok(Running {
        teleport,
        discord,
        channels,
        service,
        service_addr,
        page_addr,
        config_path,
        snapshots,
        reviewer,
        dm_users,
        stop_service,
        stop_demo,
    })
}

async fn run_in(
    options: &Options,
    service: &dyn Service,
    dir: &Path,
    out: &Out,
) -> Result<(), DemoError> {
    let mut r = start(options, service, dir, out).await?;
    intro(&r, options, dir, out);
    let burst = options.burst.unwrap_or(if options.fast {
        FAST_BURST
    } else {
        DEFAULT_BURST
    });
    let story = story::Story {
        teleport: &r.teleport,
        discord: &r.discord,
        snapshots: r.snapshots.clone(),
        out,
        pause: if options.fast {
            Duration::ZERO
        } else {
            Duration::from_millis(1500)
        },
        burst,
        service: format!("http://{}", r.service_addr),
        reviewer: &r.reviewer,
        channels: &r.channels,
        interval: reminder_interval(options.fast),
    };
    let mut service_done = false;
    let outcome = tokio::select! {
        o = story.play() => o,
        () = signalled() => Err(DemoError::Interrupted),
        res = &mut r.service => {
            service_done = true;
            Err(service_ended(res))
        }
    };
    let outcome = match outcome {
        Ok(()) if options.keep_running => {
            play_instructions(&r, dir, out);
            tokio::select! {
                () = signalled() => Ok(()),
                res = &mut r.service => {
                    service_done = true;
                    Err(service_ended(res))
                }
            }
        }
        other => other,
    };
    if let Err(e) = &outcome {
        out.line(&format!("✗ {e}"));
    }
    out.line("stopping: the service drains its Discord queue, then the emulators stop");
    r.stop_service.cancel();
    let mut result = outcome;
    if !service_done {
        let grace = service.shutdown_grace() + Duration::from_secs(5);
        let stopped = match tokio::time::timeout(grace, &mut r.service).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(DemoError::Service(e)),
            Ok(Err(_)) | Err(_) => Err(DemoError::ServiceEnded),
        };
        if result.is_ok() {
            result = stopped;
        }
    }
    r.stop_demo.cancel();
    result
}

fn service_ended(res: Result<Result<(), String>, tokio::task::JoinError>) -> DemoError {
    match res {
        Ok(Err(e)) => DemoError::Service(e),
        _ => DemoError::ServiceEnded,
    }
}

fn intro(r: &Running, options: &Options, dir: &Path, out: &Out) {
    let names: Vec<String> = r.channels.iter().map(|(n, _)| format!("#{n}")).collect();
    out.line("teleport-discord demo: the service against built-in Teleport and Discord emulators");
    out.line(&format!(
        "  Teleport emulator  {} (gRPC, mutual TLS; identity file {})",
        r.teleport.addr(),
        r.teleport.paths().identity.display()
    ));
    out.line(&format!(
        "  Discord emulator   {} (channels {}; 5 new messages per 5 s per channel)",
        r.discord.api_url(),
        names.join(", ")
    ));
    out.line(&format!(
        "  service            http://{} (/healthz, /readyz, /metrics): the same code as `teleport-discord start`",
        r.service_addr
    ));
    out.line(&format!("  config             {}", r.config_path.display()));
    out.line(&format!(
        "  temp dir           {} (removed on exit)",
        dir.display()
    ));
    out.line("  routing            role `dev` → #dev and #ops; any other role (\"*\") → #fallback");
    out.line(&format!(
        "  reviews            from Discord: Approve / Deny buttons; Discord user `{}` (id {}) is Teleport user {} ([review.users]); interactions → http://{}/discord/interactions",
        r.reviewer.name, r.reviewer.discord_id, r.reviewer.teleport_user, r.service_addr
    ));
    let requesters: Vec<String> = r
        .dm_users
        .iter()
        .filter(|u| u.teleport_user != r.reviewer.teleport_user)
        .map(|u| format!("`{}` = {}", u.name, u.teleport_user))
        .collect();
    out.line(&format!(
        "  direct messages    [notify] requester = true: Discord users {} (Teleport user trait {DISCORD_USER_TRAIT}) hear by DM when their requests resolve",
        requesters.join(", ")
    ));
    out.line(&format!(
        "  reminders          access list \"{ACCESS_LIST_TITLE}\" (owner {}) is due for review in {ACCESS_LIST_DUE_DAYS} days; [access_list] interval = \"{}\": `{}` gets a DM",
        r.reviewer.teleport_user,
        reminder_interval(options.fast),
        r.reviewer.name
    ));
    out.line(&format!(
        "  page               http://{}/  ← the channels as a web page",
        r.page_addr
    ));
    out.line("");
}

fn play_instructions(r: &Running, dir: &Path, out: &Out) {
    let base = format!("http://{}/teleport", r.page_addr);
    let json = "-H 'content-type: application/json'";
    for l in [
        String::new(),
        format!(
            "Everything keeps running; the page updates itself: http://{}/",
            r.page_addr
        ),
        "Play with it (each change shows up below and on the page):".to_owned(),
        format!(
            "  # on the page, click Approve or Deny on a pending request: you are Discord user `{}` (Teleport user {})",
            r.reviewer.name, r.reviewer.teleport_user
        ),
        "  # create a request (role dev → #dev and #ops; other roles → #fallback); prints its id;"
            .to_owned(),
        "  # alice@example.com hears by DM when it resolves (any user without a Discord user does not)"
            .to_owned(),
        format!(
            "  curl -s -X POST {base}/requests {json} -d '{{\"user\":\"alice@example.com\",\"roles\":[\"dev\"],\"reason\":\"trying it out\",\"approvals\":2}}'"
        ),
        "  # review it (two approvals resolve it, one denial denies it)".to_owned(),
        format!(
            "  curl -s -X POST {base}/requests/ID/reviews {json} -d '{{\"author\":\"bob@example.com\",\"approve\":true,\"reason\":\"ok\"}}'"
        ),
        "  # or approve/deny it directly, like `tctl request approve/deny`".to_owned(),
        format!(
            "  curl -s -X POST {base}/requests/ID/resolve {json} -d '{{\"approve\":false,\"reason\":\"not today\"}}'"
        ),
        "  # let it expire (Teleport deletes it)".to_owned(),
        format!("  curl -s -X DELETE {base}/requests/ID"),
        "  # list the requests".to_owned(),
        format!("  curl -s {base}/requests"),
        "  # the service's metrics".to_owned(),
        format!(
            "  curl -s http://{}/metrics | grep -E '^(teleport_discord_messages|discord_operations)'",
            r.service_addr
        ),
        "  # a second replica on the same config: nothing is posted twice".to_owned(),
        format!("  teleport-discord start -c {}", r.config_path.display()),
        format!("Ctrl-C stops everything and removes {}.", dir.display()),
        String::new(),
    ] {
        out.line(&l);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
                }
            }
            Err(_) => {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listen_is_the_documented_one() {
        assert_eq!(
            DEFAULT_LISTEN.parse::<SocketAddr>().ok(),
            Some(default_listen())
        );
    }
}
