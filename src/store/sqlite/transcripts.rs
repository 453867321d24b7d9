//! Conversations' transcripts and handover flags on SQLite (see
//! [`Transcripts`](crate::store::roles::Transcripts)).

use rusqlite::params;

use super::rows::{address, all, exec, one, sql_limit};
use super::{Blocking, Sync};
use crate::domain::Address;
use crate::store::StoreError;
use crate::store::roles::{ConversationSummary, Speaker, TranscriptLine};

const SUMMARY: &str = "SELECT channel, address, bot, handed_over_ms, last_ms, last_text FROM conversations";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationSummary> {
    let user = address(r, 0, 1)?;
    let bot: Option<String> = r.get(2)?;
    Ok(ConversationSummary {
        bot: bot.and_then(|b| Address::parse(user.channel(), &b).ok()),
        user,
        handed_over_ms: r.get(3)?,
        last_ms: r.get(4)?,
        last_text: r.get(5)?,
    })
}

impl Blocking {
    /// See [`Transcripts::record`](crate::store::roles::Transcripts::record).
    pub fn record(
        &self,
        user: &Address,
        bot: Option<&Address>,
        lines: &[TranscriptLine],
    ) -> Result<(), StoreError> {
        let Some(last) = lines.last() else { return Ok(()) };
        let (ch, id) = (user.channel().as_str(), user.id());
        self.write(Sync::Normal, |tx| {
            for l in lines {
                exec(
                    tx,
                    "INSERT INTO transcript_lines (channel, address, speaker, author, text, at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![ch, id, l.speaker.as_str(), l.author, l.text, l.at_ms],
                )?;
            }
            exec(
                tx,
                "INSERT INTO conversations (channel, address, bot, last_ms, last_text) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (channel, address) DO UPDATE SET
                     bot = coalesce(excluded.bot, bot), last_ms = excluded.last_ms, last_text = excluded.last_text",
                params![ch, id, bot.map(Address::id), last.at_ms, last.text],
            )
        })?;
        Ok(())
    }

    /// See [`Transcripts::set_handed_over`](crate::store::roles::Transcripts::set_handed_over).
    pub fn set_handed_over(&self, user: &Address, since_ms: Option<i64>) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "INSERT INTO conversations (channel, address, handed_over_ms, last_ms, last_text)
                 VALUES (?1, ?2, ?3, coalesce(?3, 0), '')
                 ON CONFLICT (channel, address) DO UPDATE SET handed_over_ms = excluded.handed_over_ms",
                params![user.channel().as_str(), user.id(), since_ms],
            )
        })?;
        Ok(())
    }

    /// See [`Transcripts::conversations`](crate::store::roles::Transcripts::conversations).
    pub fn conversations(&self, limit: usize) -> Result<Vec<ConversationSummary>, StoreError> {
        let sql = format!("{SUMMARY} ORDER BY handed_over_ms IS NULL, handed_over_ms, last_ms DESC LIMIT ?1");
        self.read(|c| all(c, &sql, [sql_limit(limit)], summary))
    }

    /// See [`Transcripts::conversation`](crate::store::roles::Transcripts::conversation).
    pub fn conversation(&self, user: &Address) -> Result<Option<ConversationSummary>, StoreError> {
        let sql = format!("{SUMMARY} WHERE channel = ?1 AND address = ?2");
        self.read(|c| one(c, &sql, [user.channel().as_str(), user.id()], summary))
    }

    /// See [`Transcripts::transcript`](crate::store::roles::Transcripts::transcript).
    pub fn transcript(&self, user: &Address, limit: usize) -> Result<Vec<TranscriptLine>, StoreError> {
        let mut lines = self.read(|c| {
            all(
                c,
                "SELECT speaker, author, text, at_ms FROM transcript_lines
                 WHERE channel = ?1 AND address = ?2 ORDER BY id DESC LIMIT ?3",
                params![user.channel().as_str(), user.id(), sql_limit(limit)],
                |r| {
                    let speaker: String = r.get(0)?;
                    Ok(TranscriptLine {
                        speaker: Speaker::parse(&speaker).unwrap_or(Speaker::Bot),
                        author: r.get(1)?,
                        text: r.get(2)?,
                        at_ms: r.get(3)?,
                    })
                },
            )
        })?;
        lines.reverse();
        Ok(lines)
    }

    /// See [`Transcripts::prune_transcripts`](crate::store::roles::Transcripts::prune_transcripts).
    pub fn prune_transcripts(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write(Sync::Normal, |tx| {
            let lines = exec(tx, "DELETE FROM transcript_lines WHERE at_ms < ?1", [before_ms])?;
            let conversations = exec(
                tx,
                "DELETE FROM conversations WHERE handed_over_ms IS NULL AND last_ms < ?1",
                [before_ms],
            )?;
            Ok(lines + conversations)
        })
    }
}

impl Blocking {
    /// See [`Figures::count_turn`](crate::store::roles::Figures::count_turn).
    pub fn count_turn(&self, day: i64, kind: &str, topic: Option<&str>) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(
                tx,
                "INSERT INTO turn_counts (day, kind, topic, count) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (day, kind, topic) DO UPDATE SET count = count + 1",
                params![day, kind, topic.unwrap_or("")],
            )
        })?;
        Ok(())
    }

    /// See [`Figures::agent_replied`](crate::store::roles::Figures::agent_replied).
    pub fn agent_replied(&self, at_ms: i64, waited_ms: i64) -> Result<(), StoreError> {
        self.write(Sync::Normal, |tx| {
            exec(tx, "INSERT INTO reply_waits (at_ms, waited_ms) VALUES (?1, ?2)", params![at_ms, waited_ms])
        })?;
        Ok(())
    }

    /// See [`Figures::day_counts`](crate::store::roles::Figures::day_counts).
    pub fn day_counts(&self, since_day: i64) -> Result<Vec<crate::store::roles::DayCount>, StoreError> {
        self.read(|c| {
            all(
                c,
                "SELECT day, kind, sum(count) FROM turn_counts WHERE day >= ?1 GROUP BY day, kind ORDER BY day, kind",
                [since_day],
                |r| Ok(crate::store::roles::DayCount { day: r.get(0)?, kind: r.get(1)?, count: r.get(2)? }),
            )
        })
    }

    /// See [`Figures::top_topics`](crate::store::roles::Figures::top_topics).
    pub fn top_topics(&self, since_day: i64, limit: usize) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|c| {
            all(
                c,
                "SELECT topic, sum(count) AS n FROM turn_counts WHERE day >= ?1 AND topic != ''
                 GROUP BY topic ORDER BY n DESC, topic LIMIT ?2",
                params![since_day, sql_limit(limit)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    /// See [`Figures::reply_waits`](crate::store::roles::Figures::reply_waits).
    pub fn reply_waits(&self, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.read(|c| all(c, "SELECT waited_ms FROM reply_waits WHERE at_ms >= ?1", [since_ms], |r| r.get(0)))
    }
}
