//! The console's pages as maud templates: every value interpolated is escaped, so nothing an
//! employee or an editor typed can become markup. No inline script or style: the policy
//! forbids both.

use maud::{DOCTYPE, Markup, html};

use super::Exchange;
use super::handlers::{EntryForm, RequestFilter};
use crate::domain::{MailState, RequestRecord, Unanswered, utc, utc_seconds};
use crate::engine::{FaqEntry, Lang};
use crate::store::{
    Account, ConversationSummary, DayCount, MailEvent, MailEventKind, Speaker, TranscriptLine,
};

/// What every signed-in page needs: the language, who is signed in with the session's
/// anti-forgery token, and the navigation's current item.
pub(super) struct Page<'a> {
    pub(super) lang: Lang,
    pub(super) who: Option<(&'a Account, &'a str)>,
    pub(super) active: &'static str,
}

/// `en` or `fr`, by the page language.
pub(super) fn t(lang: Lang, en: &'static str, fr: &'static str) -> &'static str {
    match lang {
        Lang::Fr => fr,
        _ => en,
    }
}

const NAV: [(&str, &str, &str, &str); 6] = [
    ("try", "/console/try", "Try the bot", "Essayer le bot"),
    ("conversations", "/console/conversations", "Conversations", "Conversations"),
    ("faq", "/console/faq", "FAQ", "FAQ"),
    ("requests", "/console/requests", "Requests", "Demandes"),
    ("unanswered", "/console/unanswered", "Unanswered", "Sans réponse"),
    ("dashboard", "/console/dashboard", "Dashboard", "Tableau de bord"),
];

fn csrf(p: &Page<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.who.map_or("", |w| w.1)); }
}

fn layout(p: &Page<'_>, title: &str, body: Markup) -> Markup {
    let l = p.lang;
    html! {
        (DOCTYPE)
        html lang=(l.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · wabot" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    span.brand { "wabot" }
                    @if let Some((account, _)) = p.who {
                        nav aria-label=(t(l, "Console", "Console")) {
                            @for (key, href, en, fr) in NAV {
                                a href=(href) class=[(p.active == key).then_some("on")] { (t(l, en, fr)) }
                            }
                        }
                        form.signout method="post" action="/console/sign-out" {
                            (csrf(p))
                            span.who { (account.name) }
                            button type="submit" { (t(l, "Sign out", "Se déconnecter")) }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The sign-in form.
pub(super) fn sign_in(lang: Lang, token: &str, error: Option<&str>) -> Markup {
    let p = Page { lang, who: None, active: "" };
    layout(
        &p,
        t(lang, "Sign in", "Connexion"),
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.card method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { (t(lang, "Email", "E-mail")) }
                input id="email" name="email" type="email" autocomplete="username" required;
                label for="password" { (t(lang, "Password", "Mot de passe")) }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { (t(lang, "Sign in", "Se connecter")) }
            }
        },
    )
}

/// A page that does not exist.
pub(super) fn not_found(p: &Page<'_>) -> Markup {
    layout(
        p,
        t(p.lang, "Not found", "Introuvable"),
        html! { p { (t(p.lang, "Nothing here.", "Rien ici.")) } },
    )
}

/// *Try the bot*.
pub(super) fn try_bot(p: &Page<'_>, exchanges: &[Exchange]) -> Markup {
    let l = p.lang;
    layout(
        p,
        t(l, "Try the bot", "Essayer le bot"),
        html! {
            p.hint { (t(l, "A conversation as an employee sees it. Nothing is stored and no request is filed.",
                         "Une conversation telle que l'employé la voit. Rien n'est enregistré, aucune demande n'est déposée.")) }
            ol.chat {
                @for (i, x) in exchanges.iter().enumerate() {
                    li.employee id=[(i + 1 == exchanges.len()).then_some("last")] { (x.said) }
                    @for r in &x.replies { li.bot { (r) } }
                    @if let Some(n) = x.note { li.note { (n) } }
                    @if let Some(m) = &x.matched {
                        li.explain {
                            details open[i + 1 == exchanges.len()] {
                                summary {
                                    @if m.answered { (t(l, "Answered with ", "Répondu avec ")) } @else { (t(l, "Best candidate ", "Meilleur candidat ")) }
                                    a href={ "/console/faq/" (m.entry) } { code { (m.entry) } }
                                    " · " (t(l, "score", "score")) " " (format!("{:.3}", m.score))
                                    @if let Some(c) = m.confidence { " · " (t(l, "confidence", "confiance")) " " (format!("{c:.3}")) }
                                }
                                table {
                                    @for (term, q, d, c) in &m.terms {
                                        tr { td { (term) } td { (format!("{q:.3} × {d:.3}")) } td { (format!("{c:.3}")) } }
                                    }
                                    @for (name, sim, z) in &m.encoders {
                                        tr { td { (name) } td { (format!("{} {sim:.3}", t(l, "similarity", "similarité"))) } td { (format!("z {z:+.2}")) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.send method="post" action="/console/try" {
                (csrf(p))
                label for="message" { (t(l, "Message", "Message")) }
                input id="message" name="message" type="text" autocomplete="off" required autofocus;
                button type="submit" { (t(l, "Send", "Envoyer")) }
            }
            form method="post" action="/console/try/reset" {
                (csrf(p))
                button.secondary type="submit" { (t(l, "Start again", "Recommencer")) }
            }
        },
    )
}

/// The FAQ's entries.
pub(super) fn faq_list(
    p: &Page<'_>,
    q: &str,
    entries: &[std::sync::Arc<FaqEntry>],
    confused: &[Vec<(String, usize)>],
    total: usize,
) -> Markup {
    let l = p.lang;
    layout(
        p,
        t(l, "FAQ", "FAQ"),
        html! {
            form.search method="get" action="/console/faq" {
                label for="q" { (t(l, "Search", "Rechercher")) }
                input id="q" name="q" type="search" value=(q);
                button type="submit" { (t(l, "Search", "Rechercher")) }
            }
            p { a.button href="/console/faq-new" { (t(l, "Add an entry", "Ajouter une entrée")) } }
            p.hint { (total) " " (t(l, "entries", "entrées")) }
            ul.entries {
                @for (i, e) in entries.iter().enumerate() {
                    li {
                        a href={ "/console/faq/" (e.id) } { code { (e.id) } }
                        " " span.lang { (e.lang.code()) } " "
                        (e.questions.first().map_or("", String::as_str))
                        @for (other, n) in confused.get(i).map_or(&[][..], Vec::as_slice) {
                            " " span.confused { (t(l, "confused with ", "confondue avec ")) (other) " (" (n) ")" }
                        }
                    }
                }
            }
        },
    )
}

/// An entry's form, to edit or to add.
pub(super) fn faq_edit(
    p: &Page<'_>,
    f: &EntryForm,
    new: bool,
    error: Option<&str>,
    confused: &[(String, usize)],
) -> Markup {
    let l = p.lang;
    let title = if new { t(l, "New entry", "Nouvelle entrée") } else { f.id.as_str() };
    let action = if new { "/console/faq-new".to_owned() } else { format!("/console/faq/{}", f.id) };
    layout(
        p,
        title,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @if !confused.is_empty() {
                p.confused {
                    (t(l, "The self-evaluation mixes this topic up with: ", "L'auto-évaluation confond ce sujet avec : "))
                    @for (i, (other, n)) in confused.iter().enumerate() {
                        @if i > 0 { ", " }
                        (other) " (" (n) ")"
                    }
                }
            }
            form.card method="post" action=(action) {
                (csrf(p))
                label for="id" { (t(l, "Id", "Identifiant")) }
                input id="id" name="id" type="text" value=(f.id) required readonly[!new];
                label for="lang" { (t(l, "Language", "Langue")) }
                select id="lang" name="lang" {
                    option value="en" selected[f.lang == "en"] { "English" }
                    option value="fr" selected[f.lang == "fr"] { "Français" }
                }
                label for="questions" { (t(l, "Questions (one per line)", "Questions (une par ligne)")) }
                textarea id="questions" name="questions" rows="5" { (f.questions) }
                label for="answer" { (t(l, "Answer", "Réponse")) }
                textarea id="answer" name="answer" rows="6" { (f.answer) }
                label for="topic" { (t(l, "Topic (shared with the entry's translation)", "Sujet (partagé avec la traduction)")) }
                input id="topic" name="topic" type="text" value=(f.topic);
                label for="category" { (t(l, "Category", "Catégorie")) }
                input id="category" name="category" type="text" value=(f.category);
                button type="submit" { (t(l, "Save", "Enregistrer")) }
            }
            @if !new {
                form method="post" action={ "/console/faq/" (f.id) "/delete" } data-confirm=(t(l, "Delete this entry?", "Supprimer cette entrée ?")) {
                    (csrf(p))
                    button.danger type="submit" { (t(l, "Delete", "Supprimer")) }
                }
            }
        },
    )
}

fn mail_status(l: Lang, r: &RequestRecord) -> &'static str {
    match r.mail {
        MailState::Sent => t(l, "sent", "envoyé"),
        MailState::Dead => t(l, "rejected", "rejeté"),
        MailState::Queued => t(l, "queued", "en attente"),
    }
}

/// Requests, filtered.
pub(super) fn requests(p: &Page<'_>, f: &RequestFilter, kinds: &[String], rows: &[RequestRecord]) -> Markup {
    let l = p.lang;
    layout(
        p,
        t(l, "Requests", "Demandes"),
        html! {
            form.filters method="get" action="/console/requests" {
                label for="kind" { (t(l, "Type", "Type")) }
                select id="kind" name="kind" {
                    option value="" { (t(l, "All", "Tous")) }
                    @for k in kinds { option value=(k) selected[*k == f.kind] { (k) } }
                }
                label for="status" { (t(l, "Status", "Statut")) }
                select id="status" name="status" {
                    option value="" { (t(l, "All", "Tous")) }
                    @for (v, en, fr) in [("queued", "queued", "en attente"), ("sent", "sent", "envoyé"), ("dead", "rejected", "rejeté")] {
                        option value=(v) selected[f.status == v] { (t(l, en, fr)) }
                    }
                }
                label for="from" { (t(l, "From", "Du")) }
                input id="from" name="from" type="date" value=(f.from);
                label for="to" { (t(l, "To", "Au")) }
                input id="to" name="to" type="date" value=(f.to);
                button type="submit" { (t(l, "Filter", "Filtrer")) }
            }
            table.list {
                thead { tr { th { (t(l, "Ticket", "Ticket")) } th { (t(l, "Created", "Créée")) } th { (t(l, "Type", "Type")) } th { (t(l, "Name", "Nom")) } th { (t(l, "E-mail", "E-mail")) } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href={ "/console/requests/" (r.ticket) } { (r.ticket) } }
                            td { (utc(r.created_at_ms)) }
                            td { (r.kind) }
                            td { (r.first_name) " " (r.last_name) }
                            td { (mail_status(l, r)) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.hint { (t(l, "No request matches.", "Aucune demande ne correspond.")) } }
        },
    )
}

/// One request and where its e-mail stands.
pub(super) fn request(p: &Page<'_>, r: &RequestRecord, history: &[MailEvent]) -> Markup {
    let l = p.lang;
    let none = String::new();
    layout(
        p,
        &r.ticket,
        html! {
            dl.fields {
                dt { (t(l, "Created", "Créée")) } dd { (utc(r.created_at_ms)) }
                dt { (t(l, "Type", "Type")) } dd { (r.kind_label) }
                dt { (t(l, "Name", "Nom")) } dd { (r.first_name) " " (r.last_name) }
                dt { (t(l, "Employee ID", "Matricule")) } dd { (r.employee_id.as_ref().unwrap_or(&none)) }
                dt { (t(l, "Employee e-mail", "E-mail de l'employé")) } dd { (r.employee_email.as_ref().unwrap_or(&none)) }
                dt { (t(l, "Department", "Service")) } dd { (r.department.as_ref().unwrap_or(&none)) }
                dt { (t(l, "Details", "Détails")) } dd.pre { (r.details.as_ref().unwrap_or(&none)) }
                dt { (t(l, "Language", "Langue")) } dd { (r.lang.code()) }
            }
            h2 { (t(l, "E-mail", "E-mail")) }
            dl.fields {
                dt { (t(l, "To", "À")) } dd { (r.recipient) }
                dt { (t(l, "Status", "Statut")) } dd { (mail_status(l, r)) }
                dt { (t(l, "Attempts", "Tentatives")) } dd { (r.attempts) }
                @if let Some(at) = r.sent_at_ms { dt { (t(l, "Sent", "Envoyé")) } dd { (utc(at)) } }
                @if let Some(at) = r.next_attempt_ms { dt { (t(l, "Next attempt", "Prochain essai")) } dd { (utc(at)) } }
                @if let Some(e) = &r.last_error { dt { (t(l, "Last error", "Dernière erreur")) } dd.pre { (e) } }
            }
            h2 { (t(l, "Delivery history", "Historique d'envoi")) }
            @if history.is_empty() {
                p.hint { (t(l, "Not attempted yet.", "Pas encore tenté.")) }
            } @else {
                table.list #mail-history {
                    thead { tr {
                        th { (t(l, "When", "Quand")) }
                        th { (t(l, "Event", "Événement")) }
                        th { (t(l, "Error", "Erreur")) }
                        th { (t(l, "Next attempt", "Prochain essai")) }
                        th { (t(l, "By", "Par")) }
                    } }
                    tbody {
                        @for e in history {
                            tr {
                                td { (utc_seconds(e.at_ms)) }
                                td { (mail_event(l, e)) }
                                td.pre { (e.error.as_deref().unwrap_or("")) }
                                td { @if let Some(at) = e.retry_at_ms { (utc_seconds(at)) } }
                                td { (e.actor.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            form method="post" action={ "/console/requests/" (r.ticket) "/resend" } {
                (csrf(p))
                button.secondary type="submit" { (t(l, "Send the e-mail again", "Renvoyer l'e-mail")) }
            }
        },
    )
}

/// What an event of an e-mail's history was, in words.
fn mail_event(l: Lang, e: &MailEvent) -> &'static str {
    match e.kind {
        MailEventKind::Sent => t(l, "Sent", "Envoyé"),
        MailEventKind::Failed => t(l, "Failed", "Échec"),
        MailEventKind::Rejected if e.retry_at_ms.is_none() => {
            t(l, "Rejected: dead-lettered", "Refusé : abandonné")
        }
        MailEventKind::Rejected => t(l, "Rejected", "Refusé"),
        MailEventKind::Resent => t(l, "Queued again", "Remis en file"),
    }
}

/// Declined questions by group.
pub(super) fn unanswered(p: &Page<'_>, rows: &[Unanswered]) -> Markup {
    let l = p.lang;
    layout(
        p,
        t(l, "Unanswered", "Sans réponse"),
        html! {
            table.list {
                thead { tr { th { (t(l, "Question", "Question")) } th { (t(l, "Times", "Fois")) } th { (t(l, "Last asked", "Dernière fois")) } th {} } }
                tbody {
                    @for u in rows {
                        tr {
                            td { (u.question) }
                            td { (u.count) }
                            td { (utc(u.last_ms)) }
                            td { a.button href={ "/console/faq-new?question=" (query_part(&u.question)) } { (t(l, "Create an entry", "Créer une entrée")) } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.hint { (t(l, "Every question was answered.", "Toutes les questions ont reçu une réponse.")) } }
        },
    )
}

fn query_part(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A duration as minutes, hours or days.
fn waited(l: Lang, ms: i64) -> String {
    let mins = ms.max(0) / 60_000;
    match mins {
        0 => t(l, "just now", "à l'instant").to_owned(),
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {:02}", m / 60, m % 60),
        m => format!("{} {}", m / 1440, t(l, "days", "jours")),
    }
}

fn conversation_href(c: &ConversationSummary) -> String {
    format!("/console/conversations/{}/{}", c.user.channel().as_str(), query_part(c.user.id()))
}

/// Conversations: handed over first, with their waiting time.
pub(super) fn conversations(p: &Page<'_>, rows: &[ConversationSummary], now_ms: i64) -> Markup {
    let l = p.lang;
    layout(
        p,
        t(l, "Conversations", "Conversations"),
        html! {
            table.list {
                thead { tr { th { (t(l, "Employee", "Employé")) } th { (t(l, "Status", "Statut")) } th { (t(l, "Last message", "Dernier message")) } } }
                tbody {
                    @for c in rows {
                        tr class=[c.handed_over_ms.is_some().then_some("waiting")] {
                            td { a href=(conversation_href(c)) { (c.user.id()) } }
                            td {
                                @if let Some(since) = c.handed_over_ms {
                                    strong { (t(l, "waiting for a person", "attend une personne")) } " · " (waited(l, now_ms - since))
                                } @else { (t(l, "with the bot", "avec le bot")) }
                            }
                            td { (c.last_text.chars().take(80).collect::<String>()) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.hint { (t(l, "No conversation yet.", "Aucune conversation pour l'instant.")) } }
        },
    )
}

/// One conversation: its transcript and, the reply and hand-back forms.
pub(super) fn conversation(
    p: &Page<'_>,
    c: &ConversationSummary,
    lines: &[TranscriptLine],
    now_ms: i64,
    can_reply: bool,
    error: Option<&str>,
) -> Markup {
    let l = p.lang;
    let href = conversation_href(c);
    layout(
        p,
        c.user.id(),
        html! {
            @if let Some(since) = c.handed_over_ms {
                p.waiting { (t(l, "Waiting for a person: ", "Attend une personne : ")) (waited(l, now_ms - since)) }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            ol.chat {
                @for line in lines {
                    @let class = match line.speaker { Speaker::Employee => "employee", Speaker::Bot => "bot", Speaker::Agent => "agent" };
                    li class=(class) {
                        @if let Some(a) = &line.author { span.author { (a) } br; }
                        (line.text)
                    }
                }
            }
            @if !can_reply { p.hint { (t(l, "Replies cannot be sent: Twilio's account is not configured.", "Impossible d'envoyer une réponse : le compte Twilio n'est pas configuré.")) } }
            form.send method="post" action={ (href) "/reply" } {
                (csrf(p))
                label for="reply" { (t(l, "Reply", "Réponse")) }
                textarea id="reply" name="reply" rows="3" required {}
                button type="submit" { (t(l, "Send reply", "Envoyer la réponse")) }
            }
            form method="post" action={ (href) "/hand-back" } {
                (csrf(p))
                button.secondary type="submit" { (t(l, "Hand back to the bot", "Rendre la main au bot")) }
            }
        },
    )
}

/// Days the dashboard's chart shows, today included.
pub(super) const DAYS_SHOWN: i64 = 14;

/// What the dashboard shows.
pub(super) struct Dashboard<'a> {
    pub(super) today: i64,
    pub(super) days: &'a [DayCount],
    pub(super) topics: &'a [(String, i64)],
    pub(super) median_wait_ms: Option<i64>,
    /// The requests filed in the last 30 days, by type, most first.
    pub(super) by_kind: &'a [(String, u64)],
    /// E-mails of requests waiting in the outbox, of any age.
    pub(super) mails_waiting: u64,
    pub(super) unanswered: &'a [Unanswered],
    pub(super) entries: usize,
}

const KINDS: [(&str, &str, &str, &str); 3] = [
    ("answered", "#2f855a", "answered", "répondus"),
    ("declined", "#dd6b20", "declined", "sans réponse"),
    ("handed_over", "#6b46c1", "handed over", "transmis"),
];

/// Turns per day, stacked by kind, as an SVG drawn here.
fn day_chart(l: Lang, d: &Dashboard<'_>) -> Markup {
    let first = d.today - (DAYS_SHOWN - 1);
    let count = |day: i64, kind: &str| {
        d.days.iter().filter(|c| c.day == day && c.kind == kind).map(|c| c.count).sum::<i64>()
    };
    let totals: Vec<i64> = (first..=d.today).map(|day| KINDS.iter().map(|k| count(day, k.0)).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, bar) = (40 * DAYS_SHOWN, 160_i64, 28_i64);
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h + 40) } role="img" aria-label=(t(l, "Messages per day", "Messages par jour")) {
            @for (i, day) in (first..=d.today).enumerate() {
                @let x = i as i64 * 40 + 6;
                @let mut y = h;
                @for (kind, color, _, _) in KINDS {
                    @let n = count(day, kind);
                    @let bh = n * (h - 10) / max;
                    @if bh > 0 {
                        @let top = { y -= bh; y };
                        rect x=(x) y=(top) width=(bar) height=(bh) fill=(color) {}
                    }
                }
                @if totals[i] > 0 { text x=(x + bar / 2) y=(y - 3) text-anchor="middle" font-size="10" { (totals[i]) } }
                text x=(x + bar / 2) y=(h + 14) text-anchor="middle" font-size="10" { (utc(day * 86_400_000).get(5..10).unwrap_or("")) }
            }
            @for (i, (_, color, en, fr)) in KINDS.iter().enumerate() {
                rect x=(6 + i as i64 * 150) y=(h + 24) width="10" height="10" fill=(*color) {}
                text x=(20 + i as i64 * 150) y=(h + 33) font-size="11" { (t(l, en, fr)) }
            }
        }
    }
}

/// Figures: turns per day, top topics, the median wait for a person, requests by type.
pub(super) fn dashboard(p: &Page<'_>, d: &Dashboard<'_>) -> Markup {
    let l = p.lang;
    let by_kind = d.by_kind;
    let max = by_kind.first().map_or(1, |k| k.1.max(1));
    let bar_h = 22;
    let height = by_kind.len() * bar_h + 4;
    layout(
        p,
        t(l, "Dashboard", "Tableau de bord"),
        html! {
            dl.fields {
                dt { (t(l, "FAQ entries", "Entrées de la FAQ")) } dd { (d.entries) }
                dt { (t(l, "Median wait for a person (30 days)", "Attente médiane d'une personne (30 jours)")) }
                dd { @match d.median_wait_ms { Some(ms) => (waited(l, ms)), None => "—" } }
                dt { (t(l, "Requests (30 days)", "Demandes (30 jours)")) } dd { (by_kind.iter().map(|(_, n)| n).sum::<u64>()) }
                dt { (t(l, "E-mails waiting", "E-mails en attente")) } dd { (d.mails_waiting) }
            }
            h2 { (t(l, "Messages per day", "Messages par jour")) }
            (day_chart(l, d))
            h2 { (t(l, "Top topics (14 days)", "Sujets les plus demandés (14 jours)")) }
            ol { @for (topic, n) in d.topics { li { (topic) " (" (n) ")" } } }
            h2 { (t(l, "Requests by type (30 days)", "Demandes par type (30 jours)")) }
            svg.chart viewBox={ "0 0 400 " (height) } role="img" aria-label=(t(l, "Requests by type", "Demandes par type")) {
                @for (i, (kind, n)) in by_kind.iter().enumerate() {
                    @let y = i * bar_h + 2;
                    @let w = 200 * n / max;
                    rect x="150" y=(y) width=(w.max(1)) height=(bar_h - 6) fill="#2b6cb0" {}
                    text x="145" y=(y + bar_h - 10) text-anchor="end" font-size="12" { (kind) }
                    text x=(155 + w) y=(y + bar_h - 10) font-size="12" { (n) }
                }
            }
            h2 { (t(l, "Most declined questions", "Questions les plus souvent sans réponse")) }
            ol { @for u in d.unanswered { li { (u.question) " (" (u.count) ")" } } }
        },
    )
}
