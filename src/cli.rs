//! The command line (SPEC §4): one function per command.

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::accounts::{self, passwords};
use crate::db::users::{self, CreateUserError, NewUser};
use crate::domain::{Email, Password};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{Db, Missing};
use crate::delivery;
use crate::domain::Trigger;
use crate::mail::{self, Mailer};
use crate::startup::{Application, shutdown_signal};
use crate::state::AppState;
use lettre::message::Mailbox;

#[derive(Debug, Parser)]
#[command(
    name = "autosend",
    version,
    about = "Self-hosted mailing manager with production-grade error reporting",
    long_about = "Self-hosted mailing manager with production-grade error reporting.\n\n\
                  Configuration comes from the environment or a .env file in the working \
                  directory; see README.md for every variable."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web application and the scheduler until SIGTERM, SIGINT or SIGHUP (each a
    /// graceful stop: unsent claimed deliveries go back to pending).
    ///
    /// The scheduler ticks every SCHEDULER_INTERVAL_SECS; 0 leaves it out (run
    /// `autosend scheduler` elsewhere, or `send-due` from cron).
    Serve,
    /// Run only the scheduler (no web server) until SIGTERM, SIGINT or SIGHUP.
    Scheduler,
    /// Run one scheduler tick (start due mailings, send what is due), then exit.
    SendDue,
    /// Start a run of one mailing now and send it, with a progress bar on a terminal.
    ///
    /// Refused (exit code 1) while the mailing has an active run or once it is finished.
    /// Deliveries that meet a temporary failure are left for the scheduler to retry.
    SendMailing {
        /// The mailing's id.
        #[arg(long)]
        id: i64,
        /// Render and log every message without sending any.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create demo users (passwords printed), recipients, messages and mailings in every
    /// status, with runs and deliveries. Nothing is sent.
    ///
    /// Leaves existing demo data alone unless --flush is given.
    SeedDemo {
        /// Delete the previous demo data first.
        #[arg(long)]
        flush: bool,
    },
    /// Apply pending database migrations and list them, then exit. The one command that
    /// creates a new, empty SQLite database where one that held data is missing (its
    /// `.marker` file beside it is left): every other command refuses to start then.
    Migrate,
    /// Validate the configuration and reach the database, the cache and the mail server.
    Check,
    /// Create an active superuser (prompts for the password on a terminal).
    Createsuperuser {
        /// The superuser's e-mail address (the login).
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create manager accounts (both manager permissions) with generated passwords.
    ///
    /// Prints one line `EMAIL PASSWORD` per account created; each password must be changed
    /// at first login.
    SeedManagers {
        /// E-mail addresses of the managers to create.
        #[arg(long = "email", required = true, num_args = 1..)]
        emails: Vec<String>,
    },
    /// Send a test e-mail through the configured backend, to check that mail gets out.
    ///
    /// One e-mail to the given addresses (from DEFAULT_FROM_EMAIL), and one each to ADMINS
    /// and MANAGERS (from SERVER_EMAIL, subject prefixed like error reports) when asked.
    Sendtestemail {
        /// Also send one to ADMINS (who receive error reports).
        #[arg(long)]
        admins: bool,
        /// Also send one to MANAGERS (who receive broken-link reports).
        #[arg(long)]
        managers: bool,
        /// Addresses to send the test e-mail to.
        #[arg(value_name = "ADDR")]
        addresses: Vec<String>,
    },
}

/// A command used wrongly (exit code 2), found after clap's own checks.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs a command; an error is a runtime failure (exit code 1).
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Scheduler => scheduler(settings).await,
        Command::SendDue => send_due(settings).await,
        Command::SendMailing { id, dry_run } => send_mailing(settings, id, dry_run).await,
        Command::SeedDemo { flush } => seed_demo(settings, flush).await,
        Command::Migrate => migrate(settings).await,
        Command::Check => check(settings).await,
        Command::Createsuperuser {
            email,
            password_stdin,
        } => createsuperuser(settings, &email, password_stdin).await,
        Command::SeedManagers { emails } => seed_managers(settings, &emails).await,
        Command::Sendtestemail {
            admins,
            managers,
            addresses,
        } => sendtestemail(settings, admins, managers, &addresses).await,
    }
}

/// A database for commands that change accounts: connected and migrated.
async fn migrated_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database, settings.log_sql).await?;
    db.migrate().await?;
    Ok(db)
}

/// The new superuser's password: from stdin (`--password-stdin`) or typed twice at a prompt.
fn read_new_password(password_stdin: bool) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "no terminal to prompt on: pass --password-stdin and pipe the password in"
    );
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let second =
        rpassword::prompt_password("Password (again): ").context("cannot read the password")?;
    anyhow::ensure!(first == second, "the two passwords do not match");
    Ok(first)
}

async fn createsuperuser(
    settings: Settings,
    email: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("--email: {m}"))?;
    let typed = read_new_password(password_stdin)?;
    let password = Password::parse_new(&typed, &typed, email.as_str())
        .map_err(|m| anyhow::anyhow!("password: {m}"))?;
    let db = migrated_db(&settings).await?;
    let new = NewUser {
        email: email.to_string(),
        password_hash: passwords::hash(password.expose()).await?,
        is_active: true,
        // Not the manager flags as well: a superuser may do everything by being one, and a
        // superuser demoted later must not keep seeing everyone's mailings through them.
        is_superuser: true,
        ..NewUser::default()
    };
    let created = users::create(&db, &new).await;
    db.close().await;
    match created {
        Ok(id) => {
            tracing::info!(user_id = id, "superuser created");
            println!(
                "Superuser {email} created. Log in at {}users/login",
                settings.base_url
            );
            Ok(())
        }
        Err(CreateUserError::DuplicateEmail) => {
            anyhow::bail!("a user with e-mail {email} already exists")
        }
        Err(CreateUserError::Unexpected(err)) => Err(err),
    }
}

async fn seed_managers(settings: Settings, emails: &[String]) -> anyhow::Result<()> {
    // Parse every address first: a typo creates nobody.
    let parsed = emails
        .iter()
        .map(|e| Email::parse(e).map_err(|m| anyhow::anyhow!("--email {e:?}: {m}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let db = migrated_db(&settings).await?;
    let mut failures = Vec::new();
    for email in parsed {
        let password = accounts::generate_password();
        let new = NewUser {
            email: email.to_string(),
            password_hash: passwords::hash(&password).await?,
            is_active: true,
            view_all_mailings: true,
            disable_mailing: true,
            must_change_password: true,
            ..NewUser::default()
        };
        match users::create(&db, &new).await {
            Ok(id) => {
                tracing::info!(user_id = id, "manager created");
                println!("{email} {password}");
            }
            Err(CreateUserError::DuplicateEmail) => {
                eprintln!("{email}: a user with this e-mail already exists; left unchanged");
                failures.push(email.to_string());
            }
            Err(CreateUserError::Unexpected(err)) => {
                db.close().await;
                return Err(err);
            }
        }
    }
    db.close().await;
    anyhow::ensure!(
        failures.is_empty(),
        "{} account(s) not created",
        failures.len()
    );
    Ok(())
}

async fn sendtestemail(
    settings: Settings,
    admins: bool,
    managers: bool,
    addresses: &[String],
) -> anyhow::Result<()> {
    let usage = |message: String| anyhow::Error::new(UsageError(message));
    if addresses.is_empty() && !admins && !managers {
        return Err(usage(
            "no recipients: give e-mail addresses, --admins or --managers \
             (see `autosend sendtestemail --help`)"
                .to_string(),
        ));
    }
    let to = addresses
        .iter()
        .map(|a| {
            a.parse::<Mailbox>()
                .map_err(|e| usage(format!("{a:?} is not an e-mail address: {e}")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if admins && settings.admins.is_empty() {
        return Err(usage("--admins: ADMINS is empty".to_string()));
    }
    if managers && settings.managers.is_empty() {
        return Err(usage("--managers: MANAGERS is empty".to_string()));
    }

    let mailer = Mailer::from_settings(&settings)?;
    let mut batches = Vec::new();
    if !to.is_empty() {
        batches.push(("", settings.default_from_email.clone(), to));
    }
    let prefix = settings.email_subject_prefix.as_str();
    if admins {
        batches.push((
            prefix,
            settings.server_email.clone(),
            settings.admins.clone(),
        ));
    }
    if managers {
        batches.push((
            prefix,
            settings.server_email.clone(),
            settings.managers.clone(),
        ));
    }
    for (prefix, from, to) in batches {
        let message = mail::test_email(&from, &to, prefix)?;
        let list = to
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let reply = mailer.send(message).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                mailer.close().await;
                return Err(anyhow::Error::new(err)
                    .context(format!("cannot send the test e-mail to {list}")));
            }
        };
        println!("Test e-mail sent to {list} ({reply}).");
    }
    mailer.close().await;
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let base_url = settings.base_url.clone();
    let app = Application::build(settings).await?;
    let port = app.port();
    tracing::info!(port, "autosend listening");
    println!("autosend is running at {base_url} (port {port}); stop it with Ctrl-C.");
    if app.state().db.count_users().await? == 0 {
        println!(
            "No user exists yet. Create the first superuser with:\n  \
             autosend createsuperuser --email you@example.com"
        );
    }
    app.run_until_stopped(shutdown_signal()).await
}

async fn scheduler(settings: Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.scheduler_interval_secs > 0,
        "SCHEDULER_INTERVAL_SECS is 0, which turns the scheduler off; set it to the tick in seconds"
    );
    let state = AppState::build(settings).await?;
    println!(
        "autosend scheduler running (every {} s); stop it with Ctrl-C.",
        state.settings.scheduler_interval_secs
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal = {
        let state = state.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            state.send_gate.stop();
            let _ = stop_tx.send(true);
        })
    };
    // Sessions and login limits are kept by the database and this process too: a deployment
    // that runs `scheduler` beside `serve` purges them from either (issue 13 item 6).
    let housekeeping = tokio::spawn(accounts::housekeeping(
        state.db.clone(),
        state.throttle.clone(),
        stop_rx.clone(),
    ));
    delivery::scheduler::run(state.delivery(), stop_rx).await;
    let _ = housekeeping.await;
    signal.abort();
    state.mailer.close().await;
    state.db.close().await;
    Ok(())
}

async fn send_due(settings: Settings) -> anyhow::Result<()> {
    let state = AppState::build(settings).await?;
    let outcome = delivery::scheduler::tick_once(&state.delivery()).await;
    state.mailer.close().await;
    state.db.close().await;
    let outcome = outcome?;
    let s = &outcome.sent;
    println!(
        "started {} run(s), resumed {}, finished {}; sent {}, errors {}, retry later {}, \
         dry run {}, skipped {}; mailings opened {}, closed {}",
        outcome.started.len(),
        outcome.resumed.len(),
        outcome.finished.len(),
        s.sent,
        s.errors,
        s.retried,
        s.dry_run,
        s.skipped,
        outcome.opened.len(),
        outcome.closed.len(),
    );
    if outcome.more_work {
        println!("more work is due: run send-due again or keep the scheduler running");
    }
    Ok(())
}

async fn send_mailing(settings: Settings, id: i64, dry_run: bool) -> anyhow::Result<()> {
    use delivery::StartRunError;
    let state = AppState::build(settings).await?;
    let clock = Clock::System;
    let started =
        match delivery::engine::start_run(&state.delivery(), &clock, id, Trigger::Cli, dry_run)
            .await
        {
            Ok(started) => started,
            Err(err) => {
                state.db.close().await;
                return Err(match err {
                    StartRunError::NotFound => anyhow::anyhow!("there is no mailing {id}"),
                    StartRunError::Finished => {
                        anyhow::anyhow!("mailing {id} is finished; nothing more is sent for it")
                    }
                    StartRunError::Archived => {
                        anyhow::anyhow!("mailing {id} is archived; restore it to send it")
                    }
                    StartRunError::AlreadyActive | StartRunError::NotClaimed => {
                        anyhow::anyhow!(
                            "mailing {id} already has an active run; wait for it to finish"
                        )
                    }
                    StartRunError::OwnerInactive => anyhow::anyhow!(
                        "mailing {id} is paused: its owner's account is deactivated; activate the \
                     account to send it"
                    ),
                    StartRunError::Unexpected(err) => err,
                });
            }
        };
    let run_id = started.run_id;
    println!(
        "run {run_id} of mailing {id} started{}: {} recipient(s), {} skipped (unsubscribed)",
        if dry_run { " (dry run)" } else { "" },
        started.totals.total,
        started.totals.skipped,
    );
    let sending = {
        let state = state.clone();
        tokio::spawn(async move {
            let limits = delivery::engine::DriveLimits {
                run_id: Some(run_id),
                ..Default::default()
            };
            delivery::engine::drive(&state.delivery(), &Clock::System, &limits).await
        })
    };
    let result = progress::follow(&state, run_id, sending).await;
    state.mailer.close().await;
    state.db.close().await;
    result
}

async fn seed_demo(settings: Settings, flush: bool) -> anyhow::Result<()> {
    let state = AppState::build(settings).await?;
    let result = crate::demo::seed(&state.db, flush).await;
    state.db.close().await;
    let seeded = result?;
    match seeded {
        None => println!(
            "Demo data is already there (run `autosend seed-demo --flush` to recreate it). \
             Demo logins:"
        ),
        Some(counts) => println!(
            "Demo data created: {} users, {} recipients, {} messages, {} mailings, {} runs. \
             Log in with:",
            counts.users, counts.recipients, counts.messages, counts.mailings, counts.runs
        ),
    }
    for (email, password) in crate::demo::LOGINS {
        println!("  {email} {password}");
    }
    Ok(())
}

/// Following a run on the terminal: a progress bar when stdout is a terminal, plain lines
/// (for logs and pipes) otherwise.
mod progress {
    use std::io::IsTerminal;
    use std::time::{Duration, Instant};

    use crate::db::{deliveries, runs};
    use crate::delivery::engine::DriveOutcome;
    use crate::domain::RunStatus;
    use crate::state::AppState;

    pub async fn follow(
        state: &AppState,
        run_id: i64,
        mut sending: tokio::task::JoinHandle<anyhow::Result<DriveOutcome>>,
    ) -> anyhow::Result<()> {
        let terminal = std::io::stdout().is_terminal();
        let total = runs::get(&state.db, run_id)
            .await?
            .map(|r| r.totals.total)
            .unwrap_or(0);
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total.max(0) as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} {msg} [{elapsed_precise}, {per_sec}, eta {eta}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let mut last_line = Instant::now();
        let mut last_done = -1;
        let outcome = loop {
            let finished = tokio::select! {
                joined = &mut sending => Some(joined),
                _ = tokio::time::sleep(Duration::from_millis(250)) => None,
            };
            if let Some(run) = runs::get(&state.db, run_id).await? {
                let t = run.totals;
                let done = t.total - t.pending;
                let msg = format!("sent {} errors {} pending {}", t.sent, t.errors, t.pending);
                match &bar {
                    Some(bar) => {
                        bar.set_position(done.max(0) as u64);
                        bar.set_message(msg);
                    }
                    None if done != last_done
                        && (last_line.elapsed() >= Duration::from_secs(1)
                            || finished.is_some()) =>
                    {
                        println!("{done}/{} done: {msg}", t.total);
                        last_line = Instant::now();
                        last_done = done;
                    }
                    None => {}
                }
            }
            if let Some(joined) = finished {
                break joined??;
            }
        };
        if let Some(bar) = &bar {
            bar.finish();
        }
        let run = runs::get(&state.db, run_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("run {run_id} disappeared"))?;
        if run.status == RunStatus::Running {
            let next = deliveries::next_attempt_at(&state.db, Some(run_id)).await?;
            let zone = crate::domain::TimeZone::for_user(None, &state.settings.time_zone);
            let when = next
                .map(|ms| crate::web::views::layout::datetime(ms, zone))
                .unwrap_or_default();
            println!(
                "run {run_id} is waiting: {} deliveries will be retried (next at {when} {}) \
                 by the scheduler",
                run.totals.pending, state.settings.time_zone
            );
            return Ok(());
        }
        println!(
            "run {run_id} finished: {} ({}); {} retried along the way",
            run.status.label(),
            run.server_response,
            outcome.retried
        );
        anyhow::ensure!(
            run.status != RunStatus::Fail,
            "no message of run {run_id} was delivered; see the delivery log for the reasons"
        );
        Ok(())
    }
}

/// The one command that may start over on a missing SQLite file that held data.
async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = Db::open(&settings.database, settings.log_sql, Missing::Create).await?;
    let applied = db.migrate().await?;
    let url = settings.database.display_url();
    match applied.as_slice() {
        [] => println!("database {url} is up to date: no migration to apply"),
        applied => {
            println!("database {url}: applied {} migration(s):", applied.len());
            for name in applied {
                println!("  {name}");
            }
        }
    }
    db.close().await;
    Ok(())
}

async fn check(settings: Settings) -> anyhow::Result<()> {
    println!("configuration: ok");
    let mut failures = 0;
    let mut report = |what: &str, outcome: Result<String, String>| match outcome {
        Ok(detail) => println!("{what}: ok ({detail})"),
        Err(err) => {
            failures += 1;
            println!("{what}: FAILED: {err}");
        }
    };

    let db = Db::connect(&settings.database, false).await;
    let db_outcome = match &db {
        Ok(db) => db
            .ping()
            .await
            .map(|_| settings.database.display_url())
            .map_err(|e| format!("{e:#}")),
        Err(err) => Err(format!("{err:#}")),
    };
    report("database", db_outcome);

    let cache_outcome =
        match Cache::from_settings(settings.redis_url.as_ref(), &settings.redis_prefix) {
            Ok(cache) => cache.ping().await.map(|_| cache.kind().to_string()),
            Err(err) => Err(format!("{err:#}")),
        };
    report("cache", cache_outcome);

    let mail_outcome = match Mailer::from_settings(&settings) {
        Ok(mailer) => mailer
            .check()
            .await
            .map(|_| format!("{:?}", settings.email_backend).to_lowercase())
            .map_err(|e| format!("{e:#}")),
        Err(err) => Err(format!("{err:#}")),
    };
    report("mail", mail_outcome);
    if !settings.https() {
        // RFC 8058 allows one-click unsubscribe only over https; large mailbox providers
        // want it for bulk mail, so mailings without it fare worse.
        println!(
            "warning: BASE_URL ({}) is not https: mailings go out without \
             List-Unsubscribe-Post (one-click unsubscribe needs https)",
            settings.base_url
        );
    }

    if let Ok(db) = db {
        db.close().await;
    }
    anyhow::ensure!(failures == 0, "{failures} check(s) failed");
    Ok(())
}
