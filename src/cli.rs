//! The command line (SPEC §4): one function per command.

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::accounts::{self, passwords};
use crate::db::users::{self, CreateUserError, NewUser};
use crate::domain::{Email, Password};

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::mail::{self, Mailer};
use crate::startup::{Application, shutdown_signal};
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
    /// Serve the web application (and, later, the scheduler) until SIGTERM/SIGINT.
    Serve,
    /// Apply pending database migrations, then exit.
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
        is_superuser: true,
        view_all_mailings: true,
        disable_mailing: true,
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
        let reply = mailer
            .send(message)
            .await
            .with_context(|| format!("cannot send the test e-mail to {list}"))?;
        println!("Test e-mail sent to {list} ({reply}).");
    }
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

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database, settings.log_sql).await?;
    db.migrate().await?;
    println!("database {} is up to date", settings.database.display_url());
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

    if let Ok(db) = db {
        db.close().await;
    }
    anyhow::ensure!(failures == 0, "{failures} check(s) failed");
    Ok(())
}
