# autosend tasks. `just --list` shows them all.

set dotenv-load := false

# Run autosend on embedded defaults (release build).
run:
    cargo run --release -- serve

# Debug build with DEBUG=true: detailed error pages, verbose logs, no error e-mails.
dev:
    DEBUG=true cargo run -- serve

# The test suite on the embedded defaults (SQLite, in-process cache).
test:
    cargo test

# The test suite against the local PostgreSQL and Redis.
test-pg db="postgres://postgres@127.0.0.1:5432/test" redis="redis://127.0.0.1:6379":
    TEST_DATABASE_URL={{db}} TEST_REDIS_URL={{redis}} cargo test

# The browser test: headless Chromium over WebDriver (Debian's chromium, chromium-driver);
# screenshots of every step in target/e2e/.
test-e2e:
    cargo test --test e2e -- --nocapture

# Apply pending database migrations.
migrate:
    cargo run --release -- migrate

# Demo data for a first look (prints the demo logins); `just seed --flush` recreates it.
seed *args:
    cargo run --release -- seed-demo {{args}}

# Format the code.
fmt:
    cargo fmt

# Formatting check and clippy with warnings as errors, as CI runs them.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# The benchmark suite of BENCHMARKS.md on SQLite, then on PostgreSQL + Redis: HTTP under wrk
# (32 connections), delivery to postfix's smtp-sink next to smtp-source, reports at 10 000 and
# 1 000 000 deliveries, /clients/ at 100 000 recipients. Figures: target/bench/*.txt.
bench db="postgres://postgres@127.0.0.1:5432/test" redis="redis://127.0.0.1:6379":
    cargo build --release
    for b in http delivery reports clients; do cargo bench --bench $b; done
    for b in http delivery reports clients; do BENCH_DATABASE_URL={{db}} BENCH_REDIS_URL={{redis}} cargo bench --bench $b; done

# A one-second pass of the HTTP benchmark, to check that it still works.
bench-smoke:
    BENCH_SECS=1 cargo bench --bench http

# What the benchmarks drive load with (Debian, as root): wrk, and postfix for smtp-sink and
# smtp-source (installed with "No configuration", so no mail server is started).
bench-deps:
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk postfix

# Install the release binary and the systemd unit (run as root).
install-service:
    cargo build --release
    install -Dm755 target/release/autosend /usr/local/bin/autosend
    install -Dm644 deploy/autosend.service /etc/systemd/system/autosend.service
    id -u autosend >/dev/null 2>&1 || useradd --system --home /var/lib/autosend --shell /usr/sbin/nologin autosend
    install -d -o autosend -g autosend -m 0750 /var/lib/autosend /var/log/autosend
    install -d -m 0750 /etc/autosend
    test -f /etc/autosend/autosend.env || install -m 0640 -g autosend /dev/null /etc/autosend/autosend.env
    systemctl daemon-reload
    @echo "Now edit /etc/autosend/autosend.env, then: systemctl enable --now autosend"

# Fuzz one target (csv_import, report_chunker, masking) for `seconds`; on stable via RUSTC_BOOTSTRAP.
fuzz target seconds="600":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
    mkdir -p fuzz/target/corpus/{{target}}
    RUSTC_BOOTSTRAP=1 cargo fuzz run {{target}} fuzz/target/corpus/{{target}} fuzz/corpus/{{target}} -- -max_total_time={{seconds}} -timeout=20
