//! The `wabot` binary as an admin uses it.

use std::io::Write;
use std::process::{Command, Stdio};

fn wabot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wabot"));
    cmd.env_remove("WABOT_CONFIG").env_remove("TWILIO_AUTH_TOKEN").env_remove("WABOT_CORPUS");
    // The semantic scorer caches entry vectors beside the database: keep them out of the checkout.
    // Lexical matching unless a test asks for the semantic scorer: each command would embed
    // the FAQ at start, and these tests are about the commands, not the matching.
    cmd.env("WABOT_DB", data_dir().join("wabot.db")).env("WABOT_SEMANTIC", "off");
    cmd
}

fn data_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn run_with_stdin(mut cmd: Command, input: &str) -> (bool, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn ask_answers_one_question() {
    let out = wabot().args(["ask", "how do I reset my password"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("password-reset-en ("), "{stdout}");
}

#[test]
fn ask_json_reads_stdin_one_line_per_query() {
    let mut cmd = wabot();
    cmd.args(["ask", "--json"]);
    let (ok, stdout, stderr) = run_with_stdin(cmd, "où est ma fiche de paie ?\nrecette de la tarte tatin\n");
    assert!(ok, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["query"], "où est ma fiche de paie ?");
    assert!(lines[0]["id"].as_str().unwrap().starts_with("payslip"), "{}", lines[0]);
    assert!(lines[0]["answer"].as_str().unwrap().contains("portail RH"));
    assert!(lines[1]["id"].is_null(), "{}", lines[1]);
    assert!(lines[1]["answer"].is_null());
    assert!(lines[1]["score"].as_f64().unwrap() < 0.3);
}

#[test]
fn ask_with_the_semantic_scorer_answers_in_the_users_language_and_explains_each_scorers_part() {
    let out = wabot()
        .env("WABOT_SEMANTIC", "on")
        .args(["ask", "--explain", "my kid is ill, can I stay home to look after him?"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("sick-child-en ("), "{stdout}");
    assert!(
        stdout.contains("fused: confidence") && stdout.contains("margin over the next entry"),
        "{stdout}"
    );
    assert!(stdout.contains("multilingual-e5-small") && stdout.contains("similarity"), "{stdout}");
    let mut cmd = wabot();
    cmd.env("WABOT_SEMANTIC", "on").args(["ask", "--json"]);
    let (ok, stdout, stderr) = run_with_stdin(cmd, "who won the football match last night\n");
    assert!(ok, "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(line["id"].is_null(), "declined: {line}");
}

#[test]
fn ask_explain_shows_terms_and_weights() {
    let out = wabot().args(["ask", "--explain", "pasword reset"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("corrected \"pasword\" → \"password\""), "{stdout}");
    assert!(stdout.contains("query ") && stdout.contains(" × entry "), "{stdout}");
}

#[test]
fn a_malformed_corpus_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faq.jsonl");
    std::fs::write(
        &path,
        "{\"id\": \"a\", \"lang\": \"en\", \"questions\": [\"q\"], \"answer\": \"a\"}\n{oops}\n",
    )
    .unwrap();
    let out = wabot().args(["ask", "--corpus"]).arg(&path).arg("q").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("faq.jsonl:2:"), "{stderr}");
}

#[test]
fn chat_runs_the_dialog_in_the_terminal() {
    let db = tempfile::tempdir().unwrap();
    let mut cmd = wabot();
    cmd.arg("chat").env("WABOT_DB", db.path().join("wabot.db"));
    let (ok, stdout, _) = run_with_stdin(cmd, "bonjour\ncomment poser des congés ?\n");
    assert!(ok);
    assert!(stdout.contains("Bonjour ! Je suis"), "{stdout}");
    assert!(stdout.contains("portail RH"), "{stdout}");
}

#[test]
fn a_request_filed_in_chat_is_stored_and_listed() {
    let db = tempfile::tempdir().unwrap();
    let path = db.path().join("wabot.db");
    let mut cmd = wabot();
    cmd.arg("chat").env("WABOT_DB", &path).env_remove("WABOT_SMTP_URL");
    let (ok, stdout, stderr) = run_with_stdin(cmd, "request\n1\nÉlodie\nGarçon\nskip\nyes\n");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("REQ-"), "{stdout}");
    let out = wabot().args(["requests", "list"]).env("WABOT_DB", &path).output().unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.contains("Élodie Garçon") && listed.contains("queued"), "{listed}");
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let out = wabot().args(["serve", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0") && stderr.contains("TWILIO_AUTH_TOKEN"),
        "{stderr}"
    );
}

#[test]
fn every_command_has_help() {
    for sub in ["serve", "chat", "ask", "eval"] {
        let out = wabot().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        assert!(String::from_utf8(out.stdout).unwrap().contains("Usage: wabot"), "{sub}");
    }
}

#[test]
fn eval_self_holds_out_the_faqs_own_questions_and_names_the_entries_it_mixes_up() {
    let out = wabot().args(["eval", "--self", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["probes"].as_u64().unwrap() > report["entries"].as_u64().unwrap(), "{report}");
    let top1 = report["ranking_top1"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&top1), "{report}");
    let suggested = report["suggested"]["threshold"].as_f64().unwrap();
    assert!(suggested > 0.0 && suggested < 1.0, "{report}");
    let confusions = report["confusions"].as_array().unwrap();
    assert!(confusions.iter().all(|c| c["a"] != c["b"] && c["count"].as_u64().unwrap() > 0));
}

#[test]
fn eval_reports_figures_per_kind_of_message() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q.jsonl");
    std::fs::write(
        &queries,
        concat!(
            "{\"q\": \"how do I reset my password\", \"expected\": \"password-reset-en\", \"kind\": \"keyword\"}\n",
            "{\"q\": \"recette de la tarte tatin\", \"expected\": null, \"kind\": \"out-of-scope\"}\n",
        ),
    )
    .unwrap();
    let out = wabot().args(["eval", "--json", "--queries"]).arg(&queries).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds = report["by_kind"].as_array().unwrap();
    assert_eq!(kinds.len(), 2, "{report}");
    assert_eq!(kinds[0]["kind"], "keyword");
    assert_eq!(kinds[0]["accuracy"], 1.0);
    assert_eq!(kinds[0]["ranking"], 1.0, "ranked first whatever the score");
    assert_eq!(kinds[1]["kind"], "out-of-scope");
    assert_eq!(kinds[1]["accuracy"], 1.0);
    assert!(kinds[1]["ranking"].is_null(), "no in-scope message to rank: {report}");

    // The ablation ranks with the encoders alone: it needs them.
    let out = wabot().args(["eval", "--semantic-only", "--queries"]).arg(&queries).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--semantic-only needs the semantic scorer"), "{stderr}");
}

#[test]
fn eval_semantic_only_ranks_with_the_encoders_alone() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q.jsonl");
    // "sick-child" shares no word with the message: only the encoders can find it.
    std::fs::write(
        &queries,
        "{\"q\": \"my kid is ill, can I stay home to look after him?\", \"expected\": \"sick-child-en\", \"kind\": \"paraphrase\"}\n",
    )
    .unwrap();
    let out = wabot()
        .env("WABOT_SEMANTIC", "on")
        .args(["eval", "--json", "--semantic-only", "--queries"])
        .arg(&queries)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ranking_accuracy"], 1.0, "{report}");
    assert_eq!(report["by_kind"][0]["ranking"], 1.0, "{report}");
}

#[test]
fn serve_refuses_a_password_inside_the_files_smtp_url_naming_the_key_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wabot.toml");
    std::fs::write(
        &path,
        "[mail]\nsmtp_url = \"smtp://helpdesk:hunter22@mail.example.com:587?tls=required\"\n",
    )
    .unwrap();
    let out = wabot().arg("--config").arg(&path).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("`mail.smtp_url` holds a password"), "{stderr}");
    assert!(stderr.contains("set WABOT_SMTP_PASSWORD in the environment"), "{stderr}");
    assert!(!stderr.contains("hunter22"), "{stderr}");
}

#[test]
fn serve_refuses_smtp_credentials_over_a_connection_without_tls() {
    let db = tempfile::tempdir().unwrap();
    let out = wabot()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WABOT_DB", db.path().join("wabot.db"))
        .env("WABOT_SMTP_URL", "smtp://helpdesk@mail.example.com:587")
        .env("WABOT_SMTP_PASSWORD", "hunter22")
        .env_remove("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("the SMTP credentials would go to mail.example.com:587 without TLS"), "{stderr}");
    assert!(stderr.contains("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH=1"), "{stderr}");
    assert!(!stderr.contains("hunter22"), "{stderr}");
}

#[test]
fn serve_warns_at_start_when_the_operator_allows_credentials_without_tls() {
    use std::io::BufRead;
    let db = tempfile::tempdir().unwrap();
    let mut child = wabot()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WABOT_DB", db.path().join("wabot.db"))
        .env("WABOT_OCR", "off")
        .env("WABOT_LOG", "warn")
        // A relay on loopback needs no opt-in; a name that is not loopback does.
        .env("WABOT_SMTP_URL", "smtp://helpdesk@relay.invalid:25")
        .env("WABOT_SMTP_PASSWORD", "hunter22")
        .env("WABOT_SMTP_ALLOW_PLAINTEXT_AUTH", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // Should the warning never come, the server is stopped after a while and the test fails.
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    let watchdog = std::sync::Arc::clone(&child);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = watchdog.lock().unwrap().kill();
    });
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let warned = line.contains("WARN") && line.contains("credentials go to this server without TLS");
        seen.push(line);
        if warned {
            break;
        }
    }
    let mut child = child.lock().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.last().is_some_and(|l| l.contains("relay.invalid:25")), "{seen:#?}");
    assert!(seen.iter().all(|l| !l.contains("hunter22")), "{seen:#?}");
}

#[test]
fn users_add_reads_the_password_from_piped_stdin_and_list_remove_and_passwd_follow() {
    let db = data_dir().join("users.db");
    let users = |args: &[&str]| {
        let mut cmd = wabot();
        cmd.env("WABOT_DB", &db).arg("users").args(args);
        cmd
    };
    let (ok, out, err) = run_with_stdin(
        users(&["add", "Bob@Example.com", "--name", "Bob", "--role", "admin"]),
        "a long enough secret\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("added bob@example.com (admin)"), "{out}");
    let (ok, _, err) = run_with_stdin(users(&["add", "bob@example.com"]), "a long enough secret\n");
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, err) = run_with_stdin(users(&["add", "carol@example.com"]), "short\n");
    assert!(!ok && err.contains("at least"), "{err}");
    let out = users(&["list"]).output().unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains("bob@example.com") && list.contains("admin") && !list.contains("carol"), "{list}");
    assert!(!list.contains("argon2"), "hashes are never printed");
    let (ok, out, err) = run_with_stdin(users(&["passwd", "bob@example.com"]), "another long secret\n");
    assert!(ok && out.contains("password changed"), "{err}");
    let (ok, out, _) = run_with_stdin(users(&["remove", "bob@example.com"]), "");
    assert!(ok && out.contains("removed bob@example.com"), "{out}");
    let (ok, _, err) = run_with_stdin(users(&["remove", "bob@example.com"]), "");
    assert!(!ok && err.contains("no account"), "{err}");
}
