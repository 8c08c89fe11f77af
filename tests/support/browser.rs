//! A real headless browser for the page tests: Debian's chromium driven through chromedriver's
//! WebDriver protocol (plain JSON over HTTP with ureq). [`Browser::start`] returns `None`, with
//! a SKIP message, when chromium or chromedriver is missing (scripts/ensure-deps.sh installs
//! both for `make test`).

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
/// How many times [`Browser::start`] tries a fresh chromedriver before it fails the test.
const START_ATTEMPTS: usize = 3;
/// Browser starts in one test binary run one after another.
static START_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

fn first_file(paths: &[&str]) -> Option<String> {
    paths
        .iter()
        .find(|p| Path::new(p).is_file())
        .map(|p| p.to_string())
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        call(&self.agent, method, &url, body)
    }

    /// Starts chromedriver and a headless chromium session. Starting is retried (up to
    /// [`START_ATTEMPTS`] times, each with a fresh chromedriver on a fresh port, one start at a
    /// time in this test binary): on a loaded machine chromedriver has been seen to reset the
    /// connection of the first `POST /session`. Every failed attempt is printed; the last one
    /// fails the test.
    pub fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) =
            (first_file(&CHROMIUM), first_file(&CHROMEDRIVER))
        else {
            eprintln!(
                "SKIP: chromium and chromium-driver are not installed \
                 (apt-get install chromium chromium-driver; scripts/ensure-deps.sh test does it)"
            );
            return None;
        };
        let _one_start_at_a_time = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            match Browser::try_start(&chromium, &chromedriver) {
                Ok(browser) => return Some(browser),
                Err(e) => {
                    eprintln!("browser start, attempt {attempt} of {START_ATTEMPTS}: {e}");
                    failures.push(e);
                }
            }
        }
        panic!("cannot start a browser session: {}", failures.join("; "));
    }

    fn try_start(chromium: &str, chromedriver: &str) -> Result<Browser, String> {
        let port = super::broker::free_port();
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {chromedriver}: {e}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let session = (|| {
            let t = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if t.elapsed() > Duration::from_secs(20) {
                    return Err(format!(
                        "chromedriver did not listen on port {port} in 20 s"
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }}});
            let v = try_call(&agent, "POST", &format!("{base}/session"), Some(caps))?;
            let id = v["value"]["sessionId"]
                .as_str()
                .ok_or_else(|| format!("no WebDriver session: {v}"))?
                .to_string();
            Ok((id, profile))
        })();
        match session {
            Ok((session, profile)) => Ok(Browser {
                driver,
                base: format!("{base}/session/{session}"),
                session,
                agent,
                _profile: profile,
            }),
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                Err(e)
            }
        }
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        let v = self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        );
        v["value"].clone()
    }

    /// Waits until `script` returns `true`.
    pub fn wait_for(&self, what: &str, script: &str, timeout: Duration) {
        let t = Instant::now();
        while self.eval(script) != Value::Bool(true) {
            assert!(t.elapsed() < timeout, "page: timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Value {
    try_call(agent, method, url, body).unwrap_or_else(|e| panic!("{e}"))
}

/// One WebDriver request; a transport failure or a WebDriver error value is an `Err`.
fn try_call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let resp = match (method, body) {
        ("POST", b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or(json!({})).to_string()),
        ("DELETE", _) => agent.delete(url).call(),
        (_, _) => agent.get(url).call(),
    };
    let mut resp = resp.map_err(|e| format!("WebDriver {method} {url}: {e}"))?;
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if v["value"]["error"].is_string() {
        return Err(format!("WebDriver {method} {url}: {}", v["value"]));
    }
    Ok(v)
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.session.len();
        let url = self.base.clone();
        let _ = self.agent.delete(&url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
