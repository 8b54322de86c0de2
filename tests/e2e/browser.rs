//! Headless Chromium for one test: Debian's chromedriver started on a free port, a WebDriver
//! session on it (fantoccini), waits with a deadline, a screenshot per step and the browser's
//! console, which must stay free of errors.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for what a page should show: generous, as a debug build shares two cores.
pub const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// chromedriver in a process group of its own: dropping it kills the group, so the Chromium it
/// started goes too, even when a failed assertion skips closing the session.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is the driver's pid (`process_group(0)` below).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window on the app at `base`.
pub struct Browser {
    pub client: Client,
    base: String,
    shots: PathBuf,
    taken: usize,
    /// Dropped after the session's processes are gone: Chromium's profile.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// A console message of the page, as chromedriver reports it.
#[derive(Debug, Clone)]
pub struct ConsoleEntry {
    pub level: String,
    pub message: String,
}

/// The browser's console since the last read (chromedriver's `se/log`; W3C WebDriver has no
/// such command yet, and `goog:loggingPrefs` makes Chromium keep the entries).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (poem::http::Method, Option<String>) {
        // poem re-exports the `http` crate fantoccini speaks.
        (
            poem::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// Why the browser tests cannot run here, if they cannot. In CI (`CI` set) they must run:
/// `.ci/run` installs Chromium, and a skipped journey must never pass as a passed one.
pub fn missing() -> Option<String> {
    let missing = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .find(|path| !Path::new(path).exists())
        .map(|path| format!("{path} is not installed (.ci/run installs chromium chromium-driver)"));
    if let (Some(why), Some(_)) = (&missing, std::env::var_os("CI")) {
        panic!("the browser test cannot run in CI: {why}");
    }
    missing
}

impl Browser {
    /// Starts chromedriver and a headless Chromium on the app at `base` (`http://host:port`).
    pub async fn start(base: &str) -> Self {
        let port = crate::sink::free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let driver = Driver {
            child: command.spawn().expect("chromedriver starts"),
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(POLL).await;
        }

        let profile = tempfile::tempdir().unwrap();
        let caps: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Chromium refuses its sandbox as root, which CI containers are.
                    "--no-sandbox",
                    // Containers have a small /dev/shm; Chromium crashes when it fills.
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            // Leave a confirm() open until the test answers it, instead of dismissing it when
            // another command arrives first.
            "unhandledPromptBehavior": "ignore",
        }))
        .unwrap();
        // Plain HTTP: the driver is on loopback, so no TLS stack is needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session starts");

        // Next to the build's other output, whatever CARGO_TARGET_DIR is.
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("e2e");
        // Only this run's screenshots: step numbers move when steps are added.
        if shots.exists() {
            std::fs::remove_dir_all(&shots).unwrap();
        }
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            shots,
            taken: 0,
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    }

    /// The current path and query (`/clients/?q=zed`).
    pub async fn location(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Runs `script` in the page (its `arguments` are `args`) and returns its result.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The rendered text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let found = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                vec![json!(css)],
            )
            .await;
        found.as_str().map(str::to_string)
    }

    /// An attribute of the first element matching `css` (`None`: no element or no attribute).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let found = self
            .js(
                "const e = document.querySelector(arguments[0]); \
                 return e ? e.getAttribute(arguments[1]) : null;",
                vec![json!(css), json!(name)],
            )
            .await;
        found.as_str().map(str::to_string)
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        let n = self
            .js(
                "return document.querySelectorAll(arguments[0]).length;",
                vec![json!(css)],
            )
            .await;
        n.as_u64().unwrap_or_default() as usize
    }

    /// Polls `probe` until it yields a value; past [`PATIENCE`] the test fails with `what`, a
    /// screenshot and the page's text. The only way the test waits for the page.
    pub async fn until<T>(&mut self, what: &str, probe: impl AsyncFnMut(&Self) -> Option<T>) -> T {
        self.until_within(PATIENCE, what, probe).await
    }

    pub async fn until_within<T>(
        &mut self,
        patience: Duration,
        what: &str,
        mut probe: impl AsyncFnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(found) = probe(self).await {
                return found;
            }
            if Instant::now() >= deadline {
                let page = self.text("body").await.unwrap_or_default();
                let at = self.location().await;
                self.screenshot("timeout").await;
                panic!(
                    "timed out after {patience:?} waiting for {what} (at {at}); the page says:\n{page}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element `css` shows `needle`; returns its whole text.
    pub async fn wait_text(&mut self, css: &str, needle: &str) -> String {
        self.until(&format!("{css} to show {needle:?}"), async |b| {
            b.text(css).await.filter(|t| t.contains(needle))
        })
        .await
    }

    /// Waits until exactly `n` elements match `css`.
    pub async fn wait_count(&mut self, css: &str, n: usize) {
        self.until(&format!("{n} × {css}"), async |b| {
            (b.count(css).await == n).then_some(())
        })
        .await
    }

    async fn element(&mut self, locator: Locator<'_>) -> fantoccini::elements::Element {
        let what = format!("{locator:?}");
        self.until(&what, async |b| b.client.find(locator).await.ok())
            .await
    }

    pub async fn click(&mut self, css: &str) {
        let element = self.element(Locator::Css(css)).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Clicks the button labelled `label`.
    pub async fn press(&mut self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        let element = self.element(Locator::XPath(&xpath)).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot press {label}: {e}"));
    }

    /// Replaces the text of the input `css` by typing `value`, as a user does.
    pub async fn fill(&mut self, css: &str, value: &str) {
        let element = self.element(Locator::Css(css)).await;
        element.clear().await.unwrap();
        element
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    pub async fn select(&mut self, css: &str, label: &str) {
        let element = self.element(Locator::Css(css)).await;
        element
            .select_by_label(label)
            .await
            .unwrap_or_else(|e| panic!("cannot choose {label:?} in {css}: {e}"));
    }

    /// Waits for a `confirm()` dialog and accepts it; returns its question.
    pub async fn accept_confirm(&mut self) -> String {
        let question = self
            .until("a confirm dialog", async |b| {
                match b.client.get_alert_text().await {
                    Ok(text) => Some(text),
                    Err(e) if e.is_no_such_alert() => None,
                    Err(e) => panic!("cannot read the dialog: {e}"),
                }
            })
            .await;
        self.client.accept_alert().await.unwrap();
        question
    }

    /// Scrolls the element `css` into the middle of the window (for the next screenshot).
    pub async fn show(&self, css: &str) {
        self.js(
            "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
            vec![json!(css)],
        )
        .await;
    }

    /// Marks the loaded document; [`Browser::same_document`] then tells whether the page
    /// changed in place (htmx) or was loaded anew.
    pub async fn mark_document(&self) {
        self.js("window.__e2eMark = true;", vec![]).await;
    }

    pub async fn same_document(&self) -> bool {
        self.js("return window.__e2eMark === true;", vec![]).await == json!(true)
    }

    /// The HTTP status the current document was served with.
    pub async fn document_status(&self) -> u64 {
        let status = self
            .js(
                "return performance.getEntriesByType('navigation')[0].responseStatus;",
                vec![],
            )
            .await;
        status
            .as_u64()
            .expect("Chromium reports the document's status")
    }

    /// Saves a screenshot as `target/e2e/NN-name.png`.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The console entries since the last read.
    pub async fn console(&self) -> Vec<ConsoleEntry> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver returns the browser log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| ConsoleEntry {
                level: e["level"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Ends a step: a screenshot named `name`, and no error in the console since the last step
    /// (a JavaScript exception, a CSP refusal, a failed request) other than the `expected` ones.
    pub async fn step(&mut self, name: &str, expected: &[&str]) {
        self.screenshot(name).await;
        let unexpected: Vec<ConsoleEntry> = self
            .console()
            .await
            .into_iter()
            .filter(|e| e.level == "SEVERE")
            .filter(|e| !expected.iter().any(|x| e.message.contains(x)))
            .collect();
        assert!(
            unexpected.is_empty(),
            "step {name}: errors in the browser console: {unexpected:#?}"
        );
    }

    /// Ends the WebDriver session (Chromium quits); the driver goes with the Browser.
    pub async fn close(self) {
        self.client
            .clone()
            .close()
            .await
            .expect("the session closes");
    }
}
