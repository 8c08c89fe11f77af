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

    /// Starts chromedriver and a headless chromium session.
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
        let port = super::broker::free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
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
        let v = call(&agent, "POST", &format!("{base}/session"), Some(caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Some(Browser {
            driver,
            base: format!("{base}/session/{session}"),
            session,
            agent,
            _profile: profile,
        })
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
    let resp = match (method, body) {
        ("POST", b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or(json!({})).to_string()),
        ("DELETE", _) => agent.delete(url).call(),
        (_, _) => agent.get(url).call(),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if v["value"]["error"].is_string() {
        panic!("WebDriver {method} {url}: {}", v["value"]);
    }
    v
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
