//! GET /admin/unanswered and `wabot unanswered`: declined questions, grouped and counted.

use reqwest::Method;

use crate::helpers::*;

#[tokio::test]
async fn declined_questions_are_grouped_counted_and_listed_without_the_sender() {
    let app = spawn_with(Options { admin_token: Some(ADMIN_TOKEN), ..Options::default() }).await;
    for text in [
        "Who will win the football world cup?",
        "who will win the FOOTBALL world cup !!",
        "Who  will win the football world cup",
        "Who will win the football world cup 0612345678?",
        "How can I reset my password?",
    ] {
        app.ask(text).await;
    }
    let resp = app.client.get(app.url("/admin/unanswered")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "admin only");

    let rows: Vec<serde_json::Value> =
        app.admin(Method::GET, "/admin/unanswered").send().await.unwrap().json().await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["question"], "who will win the football world cup");
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[1]["question"], "who will win the football world cup #");
    let limited: Vec<serde_json::Value> =
        app.admin(Method::GET, "/admin/unanswered?limit=1").send().await.unwrap().json().await.unwrap();
    assert_eq!(limited.len(), 1);

    let db = app.pg_url.clone().unwrap_or_else(|| app.db.display().to_string());
    let dump = std::process::Command::new(env!("CARGO_BIN_EXE_wabot"))
        .args(["unanswered", "--json"])
        .env("WABOT_DB", &db)
        .env_remove("WABOT_CONFIG")
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let stdout = String::from_utf8(dump.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["count"], 3);
    let stored: Vec<String> =
        app.store.unanswered(100).await.unwrap().into_iter().map(|u| u.question).collect();
    assert!(stored.iter().all(|q| !q.contains("612345") && !q.contains("whatsapp")), "{stored:?}");
    app.stop().await;
}
