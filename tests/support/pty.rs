//! Pseudo-terminal pairs for the serial sink: the slave side is what the sink opens, the test
//! reads the master.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A pseudo-terminal pair: (master, slave path). The slave side is what the sink opens.
pub fn pty() -> (OwnedFd, String) {
    let (master, slave, name) = pty_pair();
    drop(slave);
    (master, name)
}

/// A pseudo-terminal pair keeping the slave side open too (so reading the master blocks until
/// data comes instead of failing while the program under test has not opened it yet).
pub fn pty_pair() -> (OwnedFd, OwnedFd, String) {
    let mut master = 0;
    let mut slave = 0;
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    let name = unsafe { std::ffi::CStr::from_ptr(libc::ttyname(slave)) }
        .to_string_lossy()
        .into_owned();
    unsafe {
        (
            OwnedFd::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
            name,
        )
    }
}

/// Reads from the pty master until `n` newline-terminated lines arrived (or a timeout).
pub fn read_lines(master: &OwnedFd, n: usize) -> Vec<String> {
    let fd = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut buf = [0u8; 4096];
        let mut acc = Vec::new();
        while let Ok(k) = f.read(&mut buf) {
            if k == 0 {
                break;
            }
            acc.extend_from_slice(&buf[..k]);
            if acc.iter().filter(|&&b| b == b'\n').count() >= n {
                break;
            }
        }
        let _ = tx.send(acc);
    });
    let acc = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no data on the pty");
    String::from_utf8_lossy(&acc)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

/// Everything written to the pty until every slave fd is closed (or `timeout`).
pub fn collect_pty(master: &OwnedFd, timeout: Duration) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let fd = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        let t = Instant::now();
        // EIO once the slave side is closed by everyone.
        while let Ok(k) = f.read(&mut buf) {
            if k == 0 || t.elapsed() > timeout {
                break;
            }
            acc.extend_from_slice(&buf[..k]);
        }
        let _ = tx.send(acc);
    });
    rx
}
