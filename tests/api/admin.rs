//! The admin API (`/admin/faq`), the journal across restarts, and reloads of the corpus.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const BIKE_QUESTION: &str = "Where can I charge my electric bicycle at the office?";
const BIKE_ANSWER: &str = "Bicycle chargers are in the basement car park, next to bay B12.";

fn bike() -> Value {
    json!({"lang": "en", "questions": [BIKE_QUESTION], "answer": BIKE_ANSWER, "category": "facilities"})
}

fn admin_app() -> Options {
    Options { admin_token: Some(ADMIN_TOKEN), ..Options::default() }
}

/// The message of an error body, `{"error": {"code": …, "message": …}}`, which every
/// refusal has.
async fn error_of(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.expect("a JSON error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    body["error"]["message"].as_str().expect("an error message").to_owned()
}

/// A corpus directory of one category file.
fn corpus_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("parking.toml"), PARKING).unwrap();
    dir
}

const PARKING: &str = r#"category = "parking"
title = { en = "Parking", fr = "Stationnement" }

[[entry]]
id = "parking-en"
lang = "en"
questions = ["Where can I park my car at the office?"]
answer = "Staff parking is on level -2; your badge opens the barrier."
"#;

const SHUTTLE: &str = r#"
[[entry]]
id = "shuttle-en"
lang = "en"
questions = ["Is there a shuttle bus from the train station?"]
answer = "The shuttle leaves the station every 20 minutes from 7:00."
"#;

/// The shipped English answer to "How can I reset my password?".
fn password_reset_en() -> String {
    let kb = wabot::knowledge::corpus::KnowledgeBase::embedded().unwrap();
    kb.entries().iter().find(|e| e.id == "password-reset-en").unwrap().answer.clone()
}

fn edit(dir: &Path, text: &str) {
    std::fs::write(dir.join("parking.toml"), text).unwrap();
}

#[tokio::test]
async fn the_admin_api_needs_the_bearer_token() {
    let app = spawn_with(admin_app()).await;
    let none = app.client.get(app.url("/admin/faq")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(none).await, "missing or invalid bearer token");

    let wrong = app.client.get(app.url("/admin/faq")).bearer_auth("test-admin-token-fedcba987654321").send();
    assert_eq!(wrong.await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let basic = app.client.get(app.url("/admin/faq")).basic_auth("admin", Some(ADMIN_TOKEN)).send();
    assert_eq!(basic.await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Refused before the body is looked at.
    let put = app.client.put(app.url("/admin/faq/bike-en")).json(&bike()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::UNAUTHORIZED);
    assert!(app.faq.engine().entry("bike-en").is_none());

    let right = app.admin(Method::GET, "/admin/faq").send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let entries: Vec<Value> = right.json().await.unwrap();
    assert_eq!(entries.len(), app.faq.engine().len());
    let reset = entries.iter().find(|e| e["id"] == "password-reset-en").expect("a shipped entry");
    assert_eq!(reset["lang"], "en");
    assert!(reset["questions"].as_array().is_some_and(|q| !q.is_empty()));
    assert!(reset["answer"].as_str().is_some_and(|a| a.contains("it.example.com")));
}

#[tokio::test]
async fn without_an_admin_token_the_admin_routes_do_not_exist() {
    let app = spawn_app().await;
    let list = app.admin(Method::GET, "/admin/faq").send().await.unwrap();
    assert_eq!(list.status(), StatusCode::NOT_FOUND);
    let put = app.admin(Method::PUT, "/admin/faq/bike-en").json(&bike()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
    assert!(app.faq.engine().entry("bike-en").is_none());
}

#[tokio::test]
async fn a_new_entry_is_answered_by_the_very_next_message_and_a_deleted_one_is_not() {
    let app = spawn_with(admin_app()).await;
    assert!(!app.ask(BIKE_QUESTION).await.concat().contains("bay B12"));

    let created = app.admin(Method::PUT, "/admin/faq/bike-en").json(&bike()).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/admin/faq/bike-en");
    let stored: Value = created.json().await.unwrap();
    let mut expected = bike();
    expected["id"] = json!("bike-en");
    assert_eq!(stored, expected);
    assert_eq!(app.ask(BIKE_QUESTION).await, [BIKE_ANSWER]);

    let read = app.admin(Method::GET, "/admin/faq/bike-en").send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.json::<Value>().await.unwrap(), expected);

    let mut changed = expected.clone();
    changed["answer"] = json!("Bicycle chargers moved to the courtyard shelter.");
    let replaced = app.admin(Method::PUT, "/admin/faq/bike-en").json(&changed).send().await.unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
    assert_eq!(replaced.json::<Value>().await.unwrap(), changed);
    assert_eq!(app.ask(BIKE_QUESTION).await, ["Bicycle chargers moved to the courtyard shelter."]);

    let deleted = app.admin(Method::DELETE, "/admin/faq/bike-en").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = app.ask(BIKE_QUESTION).await.concat();
    assert!(!after.contains("courtyard") && !after.contains("bay B12"), "{after}");
    let gone = app.admin(Method::GET, "/admin/faq/bike-en").send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_shipped_entry_can_be_deleted() {
    let app = spawn_with(admin_app()).await;
    assert_eq!(app.ask("How can I reset my password?").await, [password_reset_en()]);
    let deleted = app.admin(Method::DELETE, "/admin/faq/password-reset-en").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // What is left of the topic is its French entry, said to be French only.
    let reply = app.ask("How can I reset my password?").await.concat();
    assert!(!reply.contains(&password_reset_en()), "{reply}");
    assert!(reply.starts_with("(This answer is only available in French.)"), "{reply}");
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let app = spawn_with(admin_app()).await;
    let get = app.admin(Method::GET, "/admin/faq/nope").send().await.unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_of(get).await, "no FAQ entry \"nope\"");
    let delete = app.admin(Method::DELETE, "/admin/faq/nope").send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_of(delete).await, "no FAQ entry \"nope\"");
}

/// The status line of `method path` sent byte for byte (an HTTP client would resolve `.` and
/// `..` segments before sending), with the admin token.
async fn raw_status(app: &TestApp, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = if method == "PUT" { bike().to_string() } else { String::new() };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn dot_and_dot_dot_and_other_ids_outside_the_documented_set_are_refused_with_400() {
    let app = spawn_with(admin_app()).await;
    for method in ["GET", "PUT", "DELETE"] {
        for path in [
            "/admin/faq/.",
            "/admin/faq/..",
            "/admin/faq/%2E%2E",
            "/admin/faq/.hidden",
            "/admin/faq/a%2Fb",
            "/admin/faq/a%00b",
            "/admin/faq/caf%C3%A9",
            "/admin/faq/a%20b",
        ] {
            assert_eq!(raw_status(&app, method, path).await, "HTTP/1.1 400 Bad Request", "{method} {path}");
        }
        let long = format!("/admin/faq/{}", "a".repeat(129));
        assert_eq!(raw_status(&app, method, &long).await, "HTTP/1.1 400 Bad Request", "{method} 129 bytes");
    }
    let resp = app.admin(Method::GET, "/admin/faq/%2E%2E").send().await.unwrap();
    assert_ne!(resp.status(), StatusCode::OK);
    // The longest id and every allowed character still work.
    let id = format!("b{}", "-_.:9Z".repeat(21));
    assert_eq!(id.len(), 127);
    let put = app
        .admin(Method::PUT, &format!("/admin/faq/{id}"))
        .header("content-type", "application/json")
        .body(bike().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let invalid = app.admin(Method::GET, "/admin/faq/..x").send().await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(invalid).await, wabot::engine::ID_RULE);
}

#[tokio::test]
async fn a_bad_body_is_refused_with_a_message_naming_the_problem() {
    let app = spawn_with(admin_app()).await;
    let put = |body: String| {
        app.admin(Method::PUT, "/admin/faq/bike-en").header("content-type", "application/json").body(body)
    };

    let resp = put(r#"{"lang": "en", "questions": ["q?"] "answer": "a."}"#.into()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let message = error_of(resp).await;
    assert!(message.starts_with("invalid JSON: expected `,` or `}` at line 1 column"), "{message}");

    let mut other_id = bike();
    other_id["id"] = json!("bike-fr");
    let resp = put(other_id.to_string()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let message = error_of(resp).await;
    assert_eq!(message, "the body's id \"bike-fr\" is not the path's id \"bike-en\"");

    let mut no_question = bike();
    no_question["questions"] = json!([]);
    let resp = put(no_question.to_string()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(resp).await, "entry \"bike-en\": needs at least one question");

    let mut unknown = bike();
    unknown["tags"] = json!(["x"]);
    let resp = put(unknown.to_string()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let message = error_of(resp).await;
    assert!(message.starts_with("not a FAQ entry: unknown field `tags`"), "{message}");

    let mut no_answer = bike();
    no_answer.as_object_mut().unwrap().remove("answer");
    let resp = put(no_answer.to_string()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(resp).await, "not a FAQ entry: missing field `answer`");

    let form = app
        .admin(Method::PUT, "/admin/faq/bike-en")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bike().to_string())
        .send();
    assert_eq!(form.await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = json!({"lang": "en", "questions": ["q?"], "answer": "a".repeat(100 * 1024)});
    let resp = put(huge.to_string()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    assert!(app.faq.engine().entry("bike-en").is_none(), "nothing was applied");
}

#[tokio::test]
async fn changes_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let journal = state.path().join("data/faq-journal.jsonl");
    let options = || Options { journal: Some(journal.clone()), ..admin_app() };

    let first = spawn_with(options()).await;
    let put = first.admin(Method::PUT, "/admin/faq/bike-en").json(&bike()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let delete = first.admin(Method::DELETE, "/admin/faq/password-reset-en").send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    first.stop().await;

    // The journal is replayed even when the admin API is off.
    let second = spawn_with(Options { journal: Some(journal.clone()), ..Options::default() }).await;
    assert_eq!(second.ask(BIKE_QUESTION).await, [BIKE_ANSWER]);
    let reply = second.ask("How can I reset my password?").await.concat();
    assert!(!reply.contains(&password_reset_en()), "{reply}");
}

#[tokio::test]
async fn an_edited_corpus_is_served_after_a_reload_with_the_admin_changes_kept() {
    let corpus = corpus_dir();
    let app = spawn_with(Options { corpus: Some(corpus.path().to_owned()), ..admin_app() }).await;
    let put = app.admin(Method::PUT, "/admin/faq/bike-en").json(&bike()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let shuttle = "Is there a shuttle bus from the train station?";
    assert!(!app.ask(shuttle).await.concat().contains("every 20 minutes"));

    edit(corpus.path(), &format!("{PARKING}{SHUTTLE}"));
    let reloaded = app.faq.reload().expect("the edited corpus loads");
    assert_eq!(reloaded.entries, 3);
    assert_eq!(app.ask(shuttle).await, ["The shuttle leaves the station every 20 minutes from 7:00."]);
    assert_eq!(app.ask(BIKE_QUESTION).await, [BIKE_ANSWER], "the admin's change outlives the reload");
}

#[tokio::test]
async fn a_broken_edit_is_refused_and_the_old_answers_keep_working() {
    let corpus = corpus_dir();
    let app = spawn_with(Options { corpus: Some(corpus.path().to_owned()), ..Options::default() }).await;
    let parking = "Where can I park my car at the office?";
    let answer = "Staff parking is on level -2; your badge opens the barrier.";
    assert_eq!(app.ask(parking).await, [answer]);

    edit(corpus.path(), &format!("{PARKING}{SHUTTLE}").replace("questions = [\"Is", "questions = \"Is"));
    let err = app.faq.reload().expect_err("a broken file is refused").to_string();
    let file = corpus.path().join("parking.toml");
    assert!(err.starts_with(&format!("{}:13:", file.display())), "names the file and line: {err}");
    assert_eq!(app.ask(parking).await, [answer]);
}

#[tokio::test]
async fn polling_picks_up_a_new_corpus_file() {
    let corpus = corpus_dir();
    let app = spawn_with(Options { corpus: Some(corpus.path().to_owned()), ..Options::default() }).await;
    let poll = tokio::spawn(wabot::knowledge::faq::poll(app.faq.clone(), Duration::from_millis(20)));
    let line = json!({"id": "shuttle-en", "lang": "en", "questions": ["Is there a shuttle bus from the train station?"], "answer": "Every 20 minutes."});
    std::fs::write(corpus.path().join("transport.jsonl"), format!("{line}\n")).unwrap();
    let mut reply = Vec::new();
    for _ in 0..250 {
        reply = app.ask("Is there a shuttle bus from the train station?").await;
        if reply == ["Every 20 minutes."] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    poll.abort();
    assert_eq!(reply, ["Every 20 minutes."]);
}

#[tokio::test]
async fn an_admin_category_shows_in_the_menu() {
    let app = spawn_with(admin_app()).await;
    let put = app.admin(Method::PUT, "/admin/faq/bike-en").json(&bike()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let menu = app.ask("menu").await.concat();
    let line = menu.lines().find(|l| l.ends_with(". facilities")).unwrap_or_else(|| panic!("{menu}"));
    let number = line.split('.').next().unwrap();
    let category = app.ask(number).await.concat();
    assert!(category.ends_with(&format!("1. {BIKE_QUESTION}")), "{category}");
    assert_eq!(app.ask("1").await, [BIKE_ANSWER]);
}
