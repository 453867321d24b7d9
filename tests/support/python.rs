//! Python packages for the tests that run a real Python program (the SMTP server, Twilio's
//! own signing code): imported from the interpreter's site-packages when it has them, else
//! installed once with pip under `target/test-python/`, so that `cargo test` works on a fresh
//! machine with only Python and pip.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The interpreter the tests run: `WABOT_TEST_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("WABOT_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A `PYTHONPATH` under which `python` imports `module` from `requirement` (`name==version`):
/// none when it already does, else a directory under `target/test-python/` where it is
/// installed (with `--no-deps` when `no_deps`, for a package whose module needs only the
/// standard library).
pub fn package_path(python: &str, requirement: &str, module: &str, no_deps: bool) -> Option<PathBuf> {
    static PATHS: Mutex<Option<HashMap<String, Option<PathBuf>>>> = Mutex::new(None);
    let mut paths = PATHS.lock().unwrap_or_else(|p| p.into_inner());
    let paths = paths.get_or_insert_with(HashMap::new);
    if let Some(found) = paths.get(requirement) {
        return found.clone();
    }
    let imports = |path: Option<&Path>| {
        let mut cmd = Command::new(python);
        cmd.args(["-c", &format!("import {module}")]).stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(p) = path {
            cmd.env("PYTHONPATH", p);
        }
        cmd.status().is_ok_and(|s| s.success())
    };
    let found = if imports(None) {
        None
    } else {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-python");
        let dir = target.join(requirement.replace("==", "-"));
        if !imports(Some(&dir)) {
            // Install beside, then move into place: test binaries may race to do this.
            let staging = target.join(format!("staging-{}-{module}", std::process::id()));
            let mut pip = Command::new(python);
            pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]);
            if no_deps {
                pip.arg("--no-deps");
            }
            let status = pip
                .arg("--target")
                .arg(&staging)
                .arg(requirement)
                .status()
                .unwrap_or_else(|e| panic!("cannot run {python} -m pip: {e}"));
            assert!(status.success(), "pip install {requirement} failed");
            if std::fs::rename(&staging, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            assert!(imports(Some(&dir)), "{requirement} installed in {} does not import", dir.display());
        }
        Some(dir)
    };
    paths.insert(requirement.to_owned(), found.clone());
    found
}
