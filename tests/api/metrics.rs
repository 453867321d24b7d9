//! GET /metrics, scraped as Prometheus would.

use crate::helpers::*;

/// The value of the sample line `name` (labels included) in an OpenMetrics text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn messages_move_the_counters_and_histograms_of_the_metrics_endpoint() {
    let app = spawn_app().await;
    let before = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(before.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let before = before.text().await.unwrap();
    assert_eq!(sample(&before, "wabot_messages_total{outcome=\"answered\"}"), 0.0);

    app.ask("How can I reset my password?").await;
    app.ask("Comment poser un jour de congé ?").await;
    app.ask("Who will win the football world cup?").await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&text, "wabot_messages_total{outcome=\"answered\"}"), 2.0, "{text}");
    assert_eq!(sample(&text, "wabot_messages_total{outcome=\"declined\"}"), 1.0);
    assert_eq!(sample(&text, "wabot_reply_seconds_count"), 3.0);
    assert!(sample(&text, "wabot_reply_seconds_sum") > 0.0);
    assert_eq!(sample(&text, "wabot_match_score_count"), 2.0);
    assert_eq!(sample(&text, "wabot_outbox_depth"), 0.0);
    assert_eq!(sample(&text, "wabot_mail_failures_total"), 0.0);
    assert_eq!(sample(&text, "wabot_ocr_seconds_count"), 0.0, "registered before OCR observes it");
}

#[tokio::test]
async fn a_queued_request_shows_in_the_outbox_depth() {
    let app = spawn_app().await;
    for text in ["request", "1", "Ana", "Lopez", "skip", "yes"] {
        app.ask(text).await;
    }
    assert_eq!(app.rows("outbox"), 1, "mail is off: the request stays queued");
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&text, "wabot_outbox_depth"), 1.0, "{text}");
    assert_eq!(sample(&text, "wabot_messages_total{outcome=\"request_submitted\"}"), 1.0, "{text}");
}
