//! The bounded HTTP/1.1 server of [`super::HttpSink`]: one accepting thread, one thread per
//! connection (at most [`MAX_CONNECTIONS`]; beyond that a connection gets `503` at once), one
//! request per connection (`Connection: close`), GET and HEAD only. Request heads are parsed by
//! `httparse` from at most [`MAX_HEAD`] bytes; every socket has [`IO_TIMEOUT`] for reads and
//! writes, so a stalled client is cut off instead of holding a thread. Clips are served from
//! `http.clips_dir` only: the path is made of plain components, resolved with symlinks, and
//! must still lie inside the directory.

use super::{Frame, Shared};
use anyhow::Result;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once (event streams included).
pub const MAX_CONNECTIONS: usize = 32;
/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Read and write timeout of every socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A comment line on an idle event stream this often.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// `/api/clips` lists at most this many files (the newest).
pub const MAX_CLIPS_LISTED: usize = 100;
/// Directory entries looked at for `/api/clips`.
const MAX_CLIPS_SCANNED: usize = 10_000;

const PAGE: &str = include_str!("page.html");

/// Starts the accepting thread.
pub fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    Ok(std::thread::Builder::new()
        .name("earshot-http".into())
        .spawn(move || accept_loop(&listener, &shared))?)
}

/// Decrements the connection count when a connection thread ends.
struct ConnGuard(Arc<Shared>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(25));
                continue;
            }
            Err(e) => {
                log::debug!("http accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        if shared.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            let mut s = stream;
            let _ = respond(&mut s, 503, "text/plain", b"busy\n", false);
            continue;
        }
        let guard = ConnGuard(shared.clone());
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("earshot-http-conn".into())
            .spawn(move || {
                let _guard = guard;
                let mut stream = stream;
                if let Err(e) = serve(&mut stream, &sh) {
                    log::debug!("http: {e}");
                }
            });
        if let Err(e) = spawned {
            log::warn!("http: cannot start a connection thread: {e}");
        }
    }
}

/// A parsed request: method, path (percent-decoded) and query pairs.
struct Request {
    head: bool,
    path: String,
    query: Vec<(String, String)>,
    bearer: Option<String>,
    /// The `Range` header (clips: audio elements ask for byte ranges to seek).
    range: Option<String>,
}

impl Request {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `%XX` and `+` decoded; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the request head; `Err(code)` for a response to send instead.
fn read_request(stream: &mut TcpStream) -> Result<Request, u16> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(431);
        }
        let n = stream.read(&mut buf[len..]).map_err(|_| 408u16)?;
        if n == 0 {
            return Err(400);
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(400),
            Ok(httparse::Status::Complete(_)) => {
                let head = match req.method {
                    Some("GET") => false,
                    Some("HEAD") => true,
                    _ => return Err(405),
                };
                let target = req.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let query = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect();
                let bearer = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().strip_prefix("Bearer "))
                    .map(|t| t.trim().to_string());
                let range = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("range"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(|v| v.trim().to_string());
                return Ok(Request {
                    head,
                    path: percent_decode(path),
                    query,
                    bearer,
                    range,
                });
            }
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn head_bytes(code: u16, content_type: &str, len: Option<u64>) -> String {
    let mut h = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reason(code)
    );
    if let Some(n) = len {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    if code == 401 {
        h.push_str("WWW-Authenticate: Bearer\r\n");
    }
    if code == 405 {
        h.push_str("Allow: GET, HEAD\r\n");
    }
    h.push_str("\r\n");
    h
}

fn respond(
    s: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    s.write_all(head_bytes(code, content_type, Some(body.len() as u64)).as_bytes())?;
    if !head_only {
        s.write_all(body)?;
    }
    s.flush()
}

/// Equal in constant time (for the token).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

fn serve(stream: &mut TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    let req = match read_request(stream) {
        Ok(r) => r,
        Err(code) => {
            let msg = format!("{}\n", reason(code));
            return respond(stream, code, "text/plain", msg.as_bytes(), false);
        }
    };
    if let Some(token) = &shared.settings.token {
        let given = req.bearer.as_deref().or(req.param("token"));
        if !given.is_some_and(|g| same_secret(g, token.expose())) {
            return respond(stream, 401, "text/plain", b"token required\n", req.head);
        }
    }
    let json = "application/json";
    match req.path.as_str() {
        "/" | "/index.html" => respond(
            stream,
            200,
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
            req.head,
        ),
        "/api/captions" => {
            let max = shared.settings.history.max(1);
            let limit = req
                .param("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(20)
                .clamp(1, max);
            let body = shared.captions_json(limit);
            respond(stream, 200, json, body.as_bytes(), req.head)
        }
        "/api/health" => {
            let body = shared.health_json();
            respond(stream, 200, json, body.as_bytes(), req.head)
        }
        "/api/clips" => {
            let body = clips_json(shared.settings.clips_dir.as_deref());
            respond(stream, 200, json, body.as_bytes(), req.head)
        }
        "/metrics" => {
            let body = shared.metrics_text();
            let ct = "text/plain; version=0.0.4; charset=utf-8";
            respond(stream, 200, ct, body.as_bytes(), req.head)
        }
        "/api/events" => events(stream, shared, req.head),
        p if p.starts_with("/clips/") => clip(stream, shared, &p["/clips/".len()..], &req),
        _ => respond(stream, 404, "text/plain", b"not found\n", req.head),
    }
}

/// Ends an event stream: the count of open streams goes down.
struct StreamGuard(Arc<Shared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `/api/events`: server-sent events until the client leaves, falls `http.client_buffer` events
/// behind (the sink then drops its sender), or the sink stops. When the sink stops, the frames
/// already queued for this client are still written (the last captions of a run reach the page).
fn events(stream: &mut TcpStream, shared: &Arc<Shared>, head: bool) -> std::io::Result<()> {
    let Some(rx) = shared.subscribe() else {
        return respond(stream, 503, "text/plain", b"too many event streams\n", head);
    };
    let _guard = StreamGuard(shared.clone());
    stream.write_all(head_bytes(200, "text/event-stream", None).as_bytes())?;
    if head {
        return stream.flush();
    }
    stream.write_all(b"retry: 2000\n\n")?;
    stream.flush()?;
    loop {
        let f: Frame = match rx.recv_timeout(KEEPALIVE) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => super::keepalive(),
            // The sink stopped (or dropped this client) and every queued frame is written.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        stream.write_all(f.as_bytes())?;
        stream.flush()?;
    }
}

/// The file under `dir` named by the URL path `rel`, or `None` when it is not a regular file
/// inside `dir` (`..`, absolute paths, symlinks leading out, directories).
pub fn resolve_clip(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let root = std::fs::canonicalize(dir).ok()?;
    let full = std::fs::canonicalize(root.join(rel)).ok()?;
    (full.starts_with(&root) && full.is_file()).then_some(full)
}

fn content_type(p: &Path) -> &'static str {
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("wav") => "audio/wav",
        Some("ogg") | Some("oga") => "audio/ogg",
        Some("flac") => "audio/flac",
        Some("mp3") => "audio/mpeg",
        Some("opus") => "audio/ogg",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// One `bytes=` range of a `len`-byte file as `(first, last)` inclusive; `None`: not
/// satisfiable; several ranges or another unit are answered with the whole file (`Some` of
/// the full range).
pub fn byte_range(header: Option<&str>, len: u64) -> Option<(u64, u64)> {
    let full = (len > 0).then(|| (0, len - 1));
    let Some(spec) = header.and_then(|h| h.strip_prefix("bytes=")) else {
        return full.or(Some((0, 0)));
    };
    if spec.contains(',') {
        return full.or(Some((0, 0)));
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (first, last) = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let first: u64 = a.parse().ok()?;
            let last = if b.is_empty() {
                len.checked_sub(1)?
            } else {
                b.parse().ok()?
            };
            (first, last.min(len.checked_sub(1)?))
        }
        (true, false) => {
            let n: u64 = b.parse().ok()?; // the last n bytes
            (len.checked_sub(n.min(len))?, len.checked_sub(1)?)
        }
        (true, true) => return None,
    };
    (first <= last && last < len).then_some((first, last))
}

fn clip(stream: &mut TcpStream, shared: &Shared, rel: &str, req: &Request) -> std::io::Result<()> {
    let head = req.head;
    let found = shared
        .settings
        .clips_dir
        .as_deref()
        .and_then(|d| resolve_clip(d, rel));
    let Some(path) = found else {
        return respond(stream, 404, "text/plain", b"no such clip\n", head);
    };
    let Ok(mut file) = std::fs::File::open(&path) else {
        return respond(stream, 404, "text/plain", b"no such clip\n", head);
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let Some((first, last)) = byte_range(req.range.as_deref(), len) else {
        let mut h = head_bytes(416, "text/plain", Some(0));
        h.insert_str(h.len() - 2, &format!("Content-Range: bytes */{len}\r\n"));
        stream.write_all(h.as_bytes())?;
        return stream.flush();
    };
    let count = if len == 0 { 0 } else { last - first + 1 };
    let partial = req.range.is_some() && len > 0 && count < len;
    let code = if partial { 206 } else { 200 };
    let mut h = head_bytes(code, content_type(&path), Some(count));
    let mut extra = String::from("Accept-Ranges: bytes\r\n");
    if partial {
        extra.push_str(&format!("Content-Range: bytes {first}-{last}/{len}\r\n"));
    }
    h.insert_str(h.len() - 2, &extra);
    stream.write_all(h.as_bytes())?;
    if !head && count > 0 {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(first))?;
        // At most the length announced, even if the file grows meanwhile.
        std::io::copy(&mut (&mut file).take(count), stream)?;
    }
    stream.flush()
}

/// `/api/clips`: the newest [`MAX_CLIPS_LISTED`] files of the clips directory (`[]` without one).
fn clips_json(dir: Option<&Path>) -> String {
    let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) else {
        return "[]".into();
    };
    let mut files: Vec<(std::time::SystemTime, String, u64)> = entries
        .take(MAX_CLIPS_SCANNED)
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let name = e.file_name().into_string().ok()?;
            (meta.is_file() && !name.starts_with('.')).then(|| {
                (
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    name,
                    meta.len(),
                )
            })
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    files.truncate(MAX_CLIPS_LISTED);
    let list: Vec<serde_json::Value> = files
        .into_iter()
        .map(|(t, name, bytes)| {
            serde_json::json!({
                "name": name,
                "bytes": bytes,
                "modified": crate::sink::format::iso8601(t),
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%2e%2E/x"), "../x");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range(None, 100), Some((0, 99)));
        assert_eq!(byte_range(Some("bytes=0-"), 100), Some((0, 99)));
        assert_eq!(byte_range(Some("bytes=10-19"), 100), Some((10, 19)));
        assert_eq!(byte_range(Some("bytes=90-200"), 100), Some((90, 99)));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Some((90, 99)));
        assert_eq!(byte_range(Some("bytes=-500"), 100), Some((0, 99)));
        assert_eq!(byte_range(Some("bytes=100-"), 100), None);
        assert_eq!(byte_range(Some("bytes=5-2"), 100), None);
        assert_eq!(byte_range(Some("bytes=x-2"), 100), None);
        assert_eq!(byte_range(Some("bytes=-"), 100), None);
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), Some((0, 99)));
        assert_eq!(byte_range(Some("items=0-1"), 100), Some((0, 99)));
        assert_eq!(byte_range(None, 0), Some((0, 0)));
        assert_eq!(byte_range(Some("bytes=0-"), 0), None);
    }

    #[test]
    fn compares_secrets() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn clips_never_leave_their_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("clips");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.wav"), b"RIFF").unwrap();
        std::fs::write(dir.join("sub/b.wav"), b"RIFF").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), b"no").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dir.join("link.wav")).unwrap();
        assert!(resolve_clip(&dir, "a.wav").is_some());
        assert!(resolve_clip(&dir, "sub/b.wav").is_some());
        for bad in [
            "../secret.txt",
            "sub/../../secret.txt",
            "/etc/passwd",
            "link.wav",
            "sub",
            "",
            "missing.wav",
        ] {
            assert!(resolve_clip(&dir, bad).is_none(), "{bad}");
        }
    }
}
