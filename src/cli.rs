//! The command line (SPEC §4): one function per command.

use clap::{Parser, Subcommand};

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::mail::Mailer;
use crate::startup::{Application, shutdown_signal};

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
}

/// Runs a command; an error is a runtime failure (exit code 1).
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Check => check(settings).await,
    }
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
