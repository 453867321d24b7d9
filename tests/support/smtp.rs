//! A real SMTP server for the tests: `tests/support/smtp_sink.py` (aiosmtpd) in its own
//! process, writing each message it accepts to a temporary directory as JSON.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One message the server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The data exactly as received (CRLF line ends, encoded headers).
    pub raw: String,
    /// Headers as Python's e-mail parser decodes them, in order.
    pub headers: Vec<(String, String)>,
    /// The decoded text body, with `\n` line ends.
    pub body: String,
}

impl Received {
    /// The decoded values of the headers named `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The one decoded value of header `name`.
    pub fn header(&self, name: &str) -> &str {
        match self.header_all(name).as_slice() {
            [one] => one,
            other => panic!("expected one {name} header, got {other:?}\n{}", self.raw),
        }
    }

    /// The raw header lines, up to the first empty line.
    pub fn raw_header_lines(&self) -> Vec<&str> {
        self.raw.split("\r\n").take_while(|l| !l.is_empty()).collect()
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py")
}

/// The SMTP server's pinned version, from PyPI.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

impl SmtpSink {
    /// Starts the server on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(free_port())
    }

    /// Starts the server on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> SmtpSink {
        SmtpSink::start_with(port, &[])
    }

    /// Starts the server on `port` with `smtp_sink.py`'s options (`--stall-domain D`,
    /// `--reject-domain D`).
    pub fn start_with(port: u16, options: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let python = crate::python::python();
        let mut command = Command::new(&python);
        if let Some(path) = crate::python::package_path(&python, AIOSMTPD, "aiosmtpd", false) {
            command.env("PYTHONPATH", path);
        }
        let mut child = command
            .arg(script())
            .arg(port.to_string())
            .arg(dir.path())
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the sink's stdout");
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().expect("sink output");
            panic!(
                "the SMTP sink did not start (is aiosmtpd installed? pip install aiosmtpd==1.4.6): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        SmtpSink { child, port, dir }
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP, as to a local relay.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// RCPT TO commands stalled or refused so far for `domain`.
    pub fn rcpt_count(&self, domain: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("rcpt-{domain}.count")))
            .map_or(0, |n| n.trim().parse().unwrap_or(0))
    }

    /// The messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read the sink's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let mut m: Received =
                    serde_json::from_slice(&std::fs::read(p).expect("read a message")).expect("message JSON");
                m.body = m.body.replace("\r\n", "\n");
                m
            })
            .collect()
    }

    /// Waits until at least `n` messages have arrived (at most `timeout`), then returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "expected {n} message(s) within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
