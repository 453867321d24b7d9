//! Identifying an employee from a photo of their badge: the webhook's side of badge OCR.
//!
//! When a WhatsApp message carries an image, the webhook calls [`BadgeDesk::accept`]. What
//! can be told at once is: a file that is not an image, no way to reply (REST credentials
//! unset), a full OCR pool ("try again in a moment"). Otherwise the photo becomes a
//! [`PhotoJob`], committed to the durable store together with its message id's claim and the
//! answer "Reading your badge…" before the webhook returns that answer; a redelivery of the
//! same message id finds the claim and gets the same answer, with no second job. The rest
//! runs in the background, since OCR may take longer than Twilio waits for a webhook:
//! download the photo (through [`FetchMedia`]), decode and read it on the OCR pool
//! ([`ocr`](crate::ocr)), look the ID up in the employee [`Directory`], remember the employee
//! in the user's session, and queue the result in the outbound queue (through a
//! [`Postbox`]), which the sender worker delivers on the user's channel.
//!
//! The media port is this use case's: it says what it needs, and each channel implements it
//! (`channel::twilio`'s media download, `channel::meta`'s media lookup); the composition
//! root (`startup`) hands them in, one per channel. So this module knows no channel.
//!
//! A job is done, and forgotten, once its result is queued (in the same transaction).
//! Until then it is pending in the store and leased to the desk reading it, for
//! [`DEFAULT_LEASE`] or [`BadgeDesk::with_lease`]: on shutdown the photos being read or
//! waiting are given back ([`BadgeDesk::stop`]) and the next start — or another replica on
//! the same database — takes them at once ([`BadgeDesk::resume`]); after a crash or a
//! SIGKILL they are taken once their lease runs out, by whichever desk sweeps first
//! ([`BadgeDesk::sweep_forever`]), oldest first, as places in the OCR pool free up. One
//! pending for longer than [`STALE_AFTER`] is dropped unread.
//!
//! Every bad input gets its own reply: a file that is not an image, one too large, one that
//! cannot be read, a photo with no ID (tips for a better photo), an ID nobody has. Logs carry
//! the message id and the job's id, never the user's number.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use thiserror::Error;

use crate::config::ConfigError;
use std::collections::HashMap;

use super::outbound::Postbox;
use crate::domain::{Address, Bilingual, Channel, Clock, Employee, MessageId, Outgoing};
use crate::engine::Lang;
use crate::knowledge::directory::{Directory, DirectoryError};
use crate::ocr::decode::{DecodeError, decode_image};
use crate::ocr::pool::Slot;
use crate::ocr::{BadgeReader, OcrError, OcrPool, PoolError};
use crate::store::{Enqueued, NewOutbound, PendingPhoto, PhotoJob, Store, StoreError};

/// The example directory matching the badges in `tests/data/badges/`, used when no
/// directory is configured so the demo works out of the box.
pub const EXAMPLE_DIRECTORY: &str = include_str!("../../corpus/employees.example.csv");

/// The largest photo read, on any channel: a badge photo is far smaller.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;

/// A photo pending longer than this is dropped unread at startup: Twilio's media may be
/// gone, and a result a day late would only puzzle a user who has moved on.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long a desk holds a badge photo's job by default: reading one takes seconds, so a
/// desk that died leaves its photos to another for at most this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Pending photos looked at, and OCR places taken, by one sweep at most: far beyond what
/// is ever pending or what a pool has places for.
const RESUME_LIMIT: usize = 1000;

/// Times the identified employee is written again after a message of the same user took
/// the session's version first.
const REMEMBER_ATTEMPTS: usize = 3;

/// Everything badge reading says.
pub mod messages {
    use crate::domain::Bilingual;

    /// The webhook's immediate answer to a photo.
    pub const READING: Bilingual = Bilingual {
        en: "Reading your badge… I'll reply in a few seconds.",
        fr: "Je lis votre badge… Réponse dans quelques secondes.",
    };
    /// Identified; `{name}`, `{department}`, `{id}` are filled in.
    pub const WELCOME: Bilingual = Bilingual {
        en: "Thank you, {name} ({department})! I've identified you as employee {id}. How can I help you?",
        fr: "Merci, {name} ({department}) ! Je vous ai identifié(e) : matricule {id}. Comment puis-je vous aider ?",
    };
    /// An ID was read but nobody has it; `{id}` is filled in.
    pub const UNKNOWN_ID: Bilingual = Bilingual {
        en: "I read the employee ID {id} on your badge, but I can't find it in the staff directory. Please check the photo, or contact HR if your badge is new.",
        fr: "J'ai lu le matricule {id} sur votre badge, mais je ne le trouve pas dans l'annuaire du personnel. Vérifiez la photo, ou contactez les RH si votre badge est récent.",
    };
    /// No ID could be read.
    pub const NO_ID: Bilingual = Bilingual {
        en: "I couldn't read an employee ID on this photo. Tips: put the badge flat on a plain surface, in good light without glare, fill most of the photo with it, and hold the phone steady.",
        fr: "Je n'ai pas pu lire de matricule sur cette photo. Conseils : posez le badge à plat sur un fond uni, bien éclairé et sans reflet, qu'il remplisse presque toute la photo, et tenez le téléphone immobile.",
    };
    /// The attachment is not an image.
    pub const NOT_A_PHOTO: Bilingual = Bilingual {
        en: "That file isn't a photo. To identify yourself, send a photo (JPEG or PNG) of your employee badge.",
        fr: "Ce fichier n'est pas une photo. Pour vous identifier, envoyez une photo (JPEG ou PNG) de votre badge.",
    };
    /// The file is over the limit.
    pub const TOO_LARGE: Bilingual = Bilingual {
        en: "That file is too large (5 MB at most). Please send a normal photo of your badge.",
        fr: "Ce fichier est trop volumineux (5 Mo au maximum). Envoyez une photo normale de votre badge.",
    };
    /// The file is not a usable image.
    pub const UNREADABLE_FILE: Bilingual = Bilingual {
        en: "I couldn't open that image (it isn't a valid JPEG, PNG or WebP photo, or it is far too large). Please take a new photo of your badge.",
        fr: "Je n'ai pas pu ouvrir cette image (ce n'est pas une photo JPEG, PNG ou WebP valide, ou elle est beaucoup trop grande). Reprenez une photo de votre badge.",
    };
    /// The download failed.
    pub const DOWNLOAD_FAILED: Bilingual = Bilingual {
        en: "I couldn't download your photo. Please send it again in a moment.",
        fr: "Je n'ai pas pu télécharger votre photo. Renvoyez-la dans un instant.",
    };
    /// The OCR queue is full.
    pub const BUSY: Bilingual = Bilingual {
        en: "I'm reading a lot of badges right now. Please send your photo again in a moment.",
        fr: "Je lis beaucoup de badges en ce moment. Renvoyez votre photo dans un instant.",
    };
    /// Badge reading is off on this server.
    pub const UNAVAILABLE: Bilingual = Bilingual {
        en: "Badge reading isn't available at the moment. Please ask your question as text.",
        fr: "La lecture de badge n'est pas disponible pour le moment. Posez votre question par écrit.",
    };
    /// Something failed inside.
    pub const FAILED: Bilingual = Bilingual {
        en: "Sorry, something went wrong while reading your badge. Please try again in a moment.",
        fr: "Désolé, un problème est survenu pendant la lecture de votre badge. Réessayez dans un instant.",
    };
}

/// What can stop badge reading from starting.
#[derive(Debug, Error)]
pub enum BadgeError {
    /// The models could not be loaded.
    #[error(transparent)]
    Ocr(#[from] OcrError),
    /// The directory could not be loaded.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An HTTP client could not be built.
    #[error("badge reading: {0}")]
    Client(String),
}

/// A photo attached to a message, as the channel announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// Where the channel serves it.
    pub url: String,
    /// Its declared type (`image/jpeg`…), if any.
    pub content_type: Option<String>,
}

/// Why a photo could not be had, as far as the user's reply goes.
#[derive(Debug, Error)]
pub enum FetchError {
    /// Larger than the channel allows: the user is asked for a smaller photo.
    #[error("{0}")]
    TooLarge(String),
    /// Anything else: a refused URL, an error status, the network.
    #[error("{0}")]
    Failed(String),
}

/// Fetches the photo a message carries: implemented by each channel's media download
/// (`channel::twilio::media::MediaFetcher`, `channel::meta::media::MetaMedia`).
pub trait FetchMedia: Send + Sync {
    /// The photo's bytes; `url` is what the channel announced (a URL, or Meta's media id).
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>>;
}

/// Each channel's media download.
pub type Fetchers = HashMap<Channel, Arc<dyn FetchMedia>>;

/// A WhatsApp message carrying a photo.
#[derive(Debug, Clone)]
pub struct PhotoMessage {
    /// The user: the reply goes there.
    pub user: Address,
    /// The bot's own address: the reply comes from there.
    pub bot: Address,
    /// The channel's id of the message: the deduplication key, and the logs'.
    pub message_id: Option<MessageId>,
    /// The first attachment.
    pub media: Photo,
}

/// The webhook's answer to a photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The messages to reply with.
    pub messages: Vec<String>,
    /// True when the message had been handled before: nothing new was done.
    pub replayed: bool,
}

/// What reading a badge came to, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadgeOutcome {
    /// The employee was found.
    Identified(String),
    /// An ID was read that the directory lacks.
    UnknownId(String),
    /// No ID was read.
    NoId,
    /// The file was refused or could not be had.
    BadMedia,
    /// The OCR pool was full.
    Busy,
    /// Something failed inside.
    Failed,
}

/// Badge reading: the reader, its pool, the downloaders, the directory, the outbound queue,
/// the store holding sessions and pending photos.
pub struct BadgeDesk {
    reader: Arc<dyn BadgeReader>,
    pool: OcrPool,
    fetchers: Fetchers,
    postbox: Postbox,
    directory: Arc<Directory>,
    store: Arc<dyn Store>,
    /// When a photo was accepted, and how old a pending one is.
    clock: Arc<dyn Clock>,
    /// Where OCR durations are recorded, once the server has set it.
    metrics: std::sync::OnceLock<Arc<crate::telemetry::metrics::Metrics>>,
    /// The photos being read and sent, and the resumption: stopped with the server.
    tasks: Mutex<tokio::task::JoinSet<()>>,
    /// How long a job is this desk's once taken: longer than reading a photo can take.
    lease: Duration,
    /// The jobs this desk holds (taken and not yet finished): given back when it stops.
    held: Mutex<std::collections::HashSet<i64>>,
}

impl std::fmt::Debug for BadgeDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BadgeDesk")
            .field("workers", &self.pool.workers())
            .field("employees", &self.directory.len())
            .field("postbox", &self.postbox)
            .finish()
    }
}

impl BadgeDesk {
    /// Assembles a desk from its parts (tests pass a fake reader).
    pub fn new(
        reader: Arc<dyn BadgeReader>,
        pool: OcrPool,
        fetchers: Fetchers,
        postbox: Postbox,
        directory: Arc<Directory>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        BadgeDesk {
            reader,
            pool,
            fetchers,
            postbox,
            directory,
            store,
            clock,
            metrics: std::sync::OnceLock::new(),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            lease: DEFAULT_LEASE,
            held: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Holds each job taken for `lease` ([`DEFAULT_LEASE`] otherwise): a job whose desk
    /// died (a replica killed, a crash) is taken by another desk once its lease runs out.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// The end of a lease taken at `now_ms`.
    fn lease_until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        // Each lock is brief: an insert, a remove, or the set taken at stop.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records each photo's reading time in `metrics` (`wabot_ocr_seconds`).
    pub fn record_to(&self, metrics: Arc<crate::telemetry::metrics::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// True when results can be sent on some channel.
    pub fn can_reply(&self) -> bool {
        self.fetchers.keys().any(|c| self.postbox.delivers(*c))
    }

    /// True when a photo from `channel` can be downloaded and its result sent.
    pub fn can_reply_on(&self, channel: Channel) -> bool {
        self.fetchers.contains_key(&channel) && self.postbox.delivers(channel)
    }

    /// The employee directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Handles a photo message: the immediate answer for the webhook, given only once the
    /// job is committed (see the module doc); the rest in the background, with the result
    /// sent through the REST API.
    pub async fn accept(self: &Arc<Self>, photo: PhotoMessage) -> Accepted {
        let sid = photo.message_id.clone();
        let channel = photo.user.channel();
        let lang = self.lang_of(&photo.user).await;
        let said = |s: Bilingual| Accepted { messages: vec![s.get(lang).to_owned()], replayed: false };
        if !crate::ocr::decode::is_image_type(photo.media.content_type.as_deref()) {
            tracing::info!(message_id = sid.as_ref().map(MessageId::as_str), "attachment is not an image");
            return said(messages::NOT_A_PHOTO);
        }
        if !self.can_reply_on(channel) {
            tracing::warn!(
                channel = %channel,
                "a badge photo arrived but the channel cannot send later messages (on Twilio: \
                 TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN unset): cannot reply"
            );
            return said(messages::UNAVAILABLE);
        }
        let slot = match self.pool.reserve() {
            Ok(slot) => slot,
            Err(_) => {
                // A redelivery of a photo already queued gets its first answer, not "busy".
                if let Some(first) = self.replay(channel, sid.clone()).await {
                    tracing::info!(
                        message_id = sid.as_ref().map(MessageId::as_str),
                        "duplicate delivery of a photo: same reply"
                    );
                    return Accepted { messages: first, replayed: true };
                }
                tracing::warn!(
                    message_id = sid.as_ref().map(MessageId::as_str),
                    "OCR queue full: photo refused"
                );
                return said(messages::BUSY);
            }
        };
        let job = PhotoJob {
            user: photo.user,
            bot: photo.bot,
            message_id: photo.message_id,
            media_url: photo.media.url,
            content_type: photo.media.content_type,
            lang,
            created_ms: self.clock.now_ms(),
        };
        let reply = vec![messages::READING.get(lang).to_owned()];
        let held_until = self.lease_until(job.created_ms);
        let stored = self.store.enqueue_photo(job.clone(), reply.clone(), held_until).await;
        match stored {
            Ok(Enqueued::Queued(id)) => {
                self.held().insert(id);
                tracing::info!(
                    message_id = sid.as_ref().map(MessageId::as_str),
                    job = id,
                    "badge photo queued"
                );
                self.start(PendingPhoto { id, job }, slot);
                Accepted { messages: reply, replayed: false }
            }
            Ok(Enqueued::Replayed(first)) => {
                tracing::info!(
                    message_id = sid.as_ref().map(MessageId::as_str),
                    "duplicate delivery of a photo: same reply"
                );
                Accepted { messages: first, replayed: true }
            }
            Err(e) => {
                // Nothing was committed, the message id included: a redelivery is read afresh.
                tracing::error!(message_id = sid.as_ref().map(MessageId::as_str), error = %e, "badge photo not stored");
                said(messages::FAILED)
            }
        }
    }

    /// Takes the photos accepted before this start and not yet answered, as far as the OCR
    /// pool has places: those no desk holds — released by a desk that stopped, or whose
    /// desk died and whose lease ran out. The rest are taken by [`BadgeDesk::sweep_forever`]
    /// as places free up and leases run out. Returns how many were taken.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, StoreError> {
        let channels: Vec<Channel> =
            [Channel::Twilio, Channel::Meta].into_iter().filter(|c| self.can_reply_on(*c)).collect();
        let waiting = self
            .store
            .pending_photos(RESUME_LIMIT)
            .await?
            .into_iter()
            .filter(|p| !channels.contains(&p.job.user.channel()))
            .count();
        if waiting > 0 {
            tracing::warn!(
                jobs = waiting,
                "badge photos are pending on a channel that cannot send later messages: left queued"
            );
        }
        let taken = self.sweep().await?;
        if taken > 0 {
            tracing::info!(jobs = taken, "resuming badge photos accepted earlier and not answered");
        }
        Ok(taken)
    }

    /// Takes pending jobs no desk holds, as many as the OCR pool has places for, and reads
    /// them; one pending for longer than [`STALE_AFTER`] is dropped unread. Returns how many
    /// are being read.
    pub async fn sweep(self: &Arc<Self>) -> Result<usize, StoreError> {
        let channels: Vec<Channel> =
            [Channel::Twilio, Channel::Meta].into_iter().filter(|c| self.can_reply_on(*c)).collect();
        if channels.is_empty() {
            return Ok(0);
        }
        // Places are taken per job once the jobs are ours, not held while the store is
        // asked: a photo arriving meanwhile must not be told the pool is busy.
        let free = self.pool.available().min(RESUME_LIMIT);
        if free == 0 {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let taken = self.store.claim_photos(&channels, now, self.lease_until(now), free).await?;
        let cutoff = now.saturating_sub(i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX));
        let mut reading = 0;
        let mut no_place = Vec::new();
        for photo in taken {
            if photo.job.created_ms < cutoff {
                tracing::info!(
                    job = photo.id,
                    message_id = photo.job.message_id.as_ref().map(MessageId::as_str),
                    age_hours = now.saturating_sub(photo.job.created_ms) / 3_600_000,
                    "badge photo pending too long: dropped unread"
                );
                self.store.photo_done(photo.id).await?;
                continue;
            }
            if self.held().contains(&photo.id) {
                // Still being read here, past its lease: taking it extended the lease.
                continue;
            }
            let Ok(slot) = self.pool.reserve() else {
                // Photos that arrived meanwhile took the places: this one waits for a sweep.
                no_place.push(photo.id);
                continue;
            };
            tracing::info!(
                job = photo.id,
                message_id = photo.job.message_id.as_ref().map(MessageId::as_str),
                "badge photo taken up"
            );
            self.held().insert(photo.id);
            self.start(photo, slot);
            reading += 1;
        }
        if !no_place.is_empty() {
            self.store.release_photos(&no_place).await?;
        }
        Ok(reading)
    }

    /// Sweeps every quarter of the lease (at most every 15 s, at least every 250 ms), for
    /// ever: the jobs of a desk that died are read by this one once their lease ran out.
    /// Runs beside the server; a failed sweep is logged and tried again at the next tick.
    pub async fn sweep_forever(self: Arc<Self>) {
        let every = (self.lease / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "cannot look for badge photos to read");
            }
        }
    }

    /// Stops the photos being read or waiting for a place, wherever they are, and gives
    /// their jobs back to the store, where this or another desk takes them at once (after
    /// their lease, if the store cannot be reached now). Shutdown never waits for OCR.
    /// (The tasks hold the desk: until this is called it is not dropped.)
    pub async fn stop(&self) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
        let held: Vec<i64> = self.held().drain().collect();
        if held.is_empty() {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(2), self.store.release_photos(&held)).await {
            Ok(Ok(())) => tracing::info!(jobs = held.len(), "badge photos not answered given back"),
            Ok(Err(e)) => tracing::warn!(error = %e, "badge photos not given back: taken after their lease"),
            Err(_) => tracing::warn!("badge photos not given back in time: taken after their lease"),
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        // Each task's lock is brief: a spawn, or the abort.
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(finished) = tasks.try_join_next() {
            if let Err(e) = finished
                && e.is_panic()
            {
                tracing::error!("a badge photo's task panicked");
            }
        }
        tasks.spawn(task);
    }

    fn start(self: &Arc<Self>, photo: PendingPhoto, slot: Slot) {
        let desk = Arc::clone(self);
        self.spawn(async move { desk.finish(photo, slot).await });
    }

    /// Reads the photo in `slot`, then queues the result for the sender worker and marks
    /// the job done in one transaction: a crash before it reads the photo again after the
    /// restart, a crash after it finds the job done — the result is queued exactly once.
    async fn finish(&self, photo: PendingPhoto, slot: Slot) {
        let (id, sid) = (photo.id, photo.job.message_id.as_ref().map(MessageId::as_str));
        let (reply, _) = self.read(&photo.job, slot).await;
        let from = (photo.job.bot.channel() == photo.job.user.channel()).then(|| photo.job.bot.clone());
        let result =
            NewOutbound { to: photo.job.user.clone(), from, payload: Outgoing::text(reply).to_json() };
        let finished = self.store.finish_photo(id, vec![result], self.clock.now_ms()).await;
        self.held().remove(&id);
        match finished {
            Ok(true) => {
                tracing::info!(message_id = sid, job = id, "badge result queued");
                self.postbox.wake();
            }
            Ok(false) => tracing::info!(message_id = sid, job = id, "badge photo already answered"),
            Err(e) => tracing::error!(
                message_id = sid,
                job = id,
                error = %e,
                "badge result not queued: the photo is read again once its lease runs out"
            ),
        }
    }

    /// Keeps `employee` in the user's session. Conditional on the session's version, as a
    /// text turn is: a message of the user's committed meanwhile is not overwritten, the
    /// session is read again instead.
    async fn remember(&self, user: &Address, employee: &Employee) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        super::update_session(&*self.store, user, now, REMEMBER_ATTEMPTS, |session| {
            session.employee = Some(employee.clone());
            true
        })
        .await
        .map(|_| ())
    }

    /// The first reply to `sid`, if it was handled before.
    async fn replay(&self, channel: Channel, sid: Option<MessageId>) -> Option<Vec<String>> {
        let sid = sid?;
        self.store.replay(channel, &sid).await.ok().flatten()
    }

    async fn lang_of(&self, user: &Address) -> Lang {
        super::load_session(&*self.store, user).await.ok().and_then(|(s, _)| s.lang).unwrap_or(Lang::En)
    }

    /// Downloads and reads the photo in `slot`, identifies the employee and remembers them in
    /// the session; returns the reply.
    pub async fn read(&self, photo: &PhotoJob, slot: Slot) -> (String, BadgeOutcome) {
        let started = Instant::now();
        let (sid, lang) = (photo.message_id.as_ref().map(MessageId::as_str), photo.lang);
        let fetched = match self.fetchers.get(&photo.user.channel()) {
            Some(fetcher) => fetcher.fetch(&photo.media_url).await,
            None => Err(FetchError::Failed(format!("no media download on {}", photo.user.channel()))),
        };
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(message_id = sid, error = %e, "badge photo not downloaded");
                let said = match e {
                    FetchError::TooLarge(_) => messages::TOO_LARGE,
                    FetchError::Failed(_) => messages::DOWNLOAD_FAILED,
                };
                return (said.get(lang).to_owned(), BadgeOutcome::BadMedia);
            }
        };
        let reader = Arc::clone(&self.reader);
        let read = slot
            .run(move || {
                let image = decode_image(&bytes)?;
                Ok::<_, ReadError>(reader.read_badge(&image)?)
            })
            .await;
        let text = match read {
            Ok(Ok(text)) => text,
            Ok(Err(ReadError::Decode(e))) => {
                tracing::warn!(message_id = sid, error = %e, "badge photo refused");
                return (messages::UNREADABLE_FILE.get(lang).to_owned(), BadgeOutcome::BadMedia);
            }
            Ok(Err(ReadError::Ocr(e))) => {
                tracing::error!(message_id = sid, error = %e, "badge OCR failed");
                return (messages::FAILED.get(lang).to_owned(), BadgeOutcome::Failed);
            }
            Err(PoolError::Busy) => return (messages::BUSY.get(lang).to_owned(), BadgeOutcome::Busy),
            Err(PoolError::Stopped) => {
                tracing::error!(message_id = sid, "badge OCR worker stopped");
                return (messages::FAILED.get(lang).to_owned(), BadgeOutcome::Failed);
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        if let Some(metrics) = self.metrics.get() {
            metrics.observe_ocr(started.elapsed());
        }
        let found = text.candidates.iter().find_map(|id| self.directory.get(id));
        let (reply, outcome) = match (found, text.employee_id()) {
            (Some(employee), _) => {
                let remembered = self.remember(&photo.user, employee).await;
                if let Err(e) = remembered {
                    tracing::error!(message_id = sid, error = %e, "cannot remember the identified employee");
                }
                let reply = messages::WELCOME
                    .get(lang)
                    .replace("{name}", &employee.full_name())
                    .replace("{department}", &employee.department)
                    .replace("{id}", &employee.id);
                (reply, BadgeOutcome::Identified(employee.id.clone()))
            }
            (None, Some(id)) => {
                (messages::UNKNOWN_ID.get(lang).replace("{id}", id), BadgeOutcome::UnknownId(id.to_owned()))
            }
            (None, None) => (messages::NO_ID.get(lang).to_owned(), BadgeOutcome::NoId),
        };
        let kind = match &outcome {
            BadgeOutcome::Identified(_) => "identified",
            BadgeOutcome::UnknownId(_) => "unknown id",
            _ => "no id",
        };
        tracing::info!(
            message_id = sid,
            outcome = kind,
            rotation = text.rotation,
            lines = text.lines.len(),
            ms,
            "badge read"
        );
        (reply, outcome)
    }
}

#[derive(Debug, Error)]
enum ReadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Ocr(#[from] OcrError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_example_directory_loads() {
        let dir = Directory::from_csv(EXAMPLE_DIRECTORY.as_bytes(), "example").unwrap();
        assert_eq!(dir.get("21957b").map(|e| e.full_name()), Some("Loïc Martin".to_owned()));
    }
}
