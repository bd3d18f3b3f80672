//! What a public report shows besides its own row (the analysis, its dataset and its
//! charts), kept by the process for a moment.
//!
//! Why: a view must count itself, so it always writes the report's row; the rest of the
//! page changes only when someone edits it, which is rare next to how often it is read.
//! Measured with `pgbench` on this project's machine, the one statement that counted the
//! view AND joined the analysis, its dataset and its charts cost PostgreSQL 30-40 %
//! more than the counting `UPDATE` alone (docs/performance.md). With the content kept
//! here, a view is that `UPDATE ... RETURNING` plus a lookup in this process's memory.
//!
//! Freshness, which is the price: an entry serves views for at most
//! [`crate::Settings::report_cache_ttl`] after it was read (1 s by default; zero turns the
//! cache off). Every change this process makes to an analysis, a chart or a dataset
//! ([`ContentCache::changed`]) retires all entries at once, so its own edits show on the
//! very next view; another process's edits show within the TTL. The view count, the
//! report's own fields and its rules (public, unexpired, no password) are never cached:
//! they come from the counting statement of every view.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::{PublicAnalysis, PublicChart, PublicDataset};
use crate::Id;

/// Memory the cached contents may take, in bytes of their JSON text. Results can be
/// large; the cache keeps the most used ones within this.
const BUDGET_BYTES: u64 = 64 << 20;
/// About how many analyses the budget holds (sizes the cache's table).
const ESTIMATED_ENTRIES: usize = 4096;

/// The page content of one analysis.
#[derive(Debug)]
pub(crate) struct Content {
    pub(crate) analysis: PublicAnalysis,
    pub(crate) dataset: Option<PublicDataset>,
    pub(crate) charts: Vec<PublicChart>,
}

impl Content {
    /// Roughly what it takes in memory: its texts.
    fn bytes(&self) -> u64 {
        let raw =
            |v: &Option<Box<serde_json::value::RawValue>>| v.as_ref().map_or(0, |v| v.get().len());
        let charts: usize = self
            .charts
            .iter()
            .map(|c| c.name.len() + std::mem::size_of::<PublicChart>())
            .sum();
        let dataset = self.dataset.as_ref().map_or(0, |d| d.name.len());
        (std::mem::size_of::<Self>()
            + self.analysis.name.len()
            + raw(&self.analysis.config)
            + raw(&self.analysis.results)
            + dataset
            + charts) as u64
    }
}

#[derive(Clone)]
struct Entry {
    content: Arc<Content>,
    read_at: Instant,
    /// [`ContentCache::generation`] when the content was read.
    generation: u64,
    bytes: u64,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<Id, Entry> for ByBytes {
    fn weight(&self, _key: &Id, entry: &Entry) -> u64 {
        entry.bytes.max(1)
    }
}

/// Page contents by analysis id.
pub(crate) struct ContentCache {
    entries: Cache<Id, Entry, ByBytes>,
    /// Bumped by every change this process makes to what a page shows: entries read
    /// before it are no longer used.
    generation: AtomicU64,
}

impl Default for ContentCache {
    fn default() -> Self {
        Self {
            entries: Cache::with_weighter(ESTIMATED_ENTRIES, BUDGET_BYTES, ByBytes),
            generation: AtomicU64::new(0),
        }
    }
}

impl ContentCache {
    /// The content of `analysis_id` if it was read less than `ttl` ago and nothing was
    /// changed by this process since.
    pub(crate) fn fresh(&self, analysis_id: Id, ttl: Duration) -> Option<Arc<Content>> {
        if ttl.is_zero() {
            return None;
        }
        let entry = self.entries.get(&analysis_id)?;
        let current = entry.generation == self.generation.load(Ordering::Acquire);
        (current && entry.read_at.elapsed() < ttl).then_some(entry.content)
    }

    /// Where the changes stand; take it BEFORE reading a content to [`ContentCache::keep`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `content`, read at `read_at` after [`ContentCache::generation`] said
    /// `generation`. A change committed while it was being read makes it too old to keep.
    pub(crate) fn keep(
        &self,
        analysis_id: Id,
        content: Arc<Content>,
        generation: u64,
        read_at: Instant,
    ) {
        if generation != self.generation() {
            return;
        }
        let bytes = content.bytes();
        // One content larger than an eighth of the budget would push out many others.
        if bytes > BUDGET_BYTES / 8 {
            return;
        }
        self.entries.insert(
            analysis_id,
            Entry {
                content,
                read_at,
                generation,
                bytes,
            },
        );
    }

    /// Something a page shows was changed (and committed) by this process: every entry
    /// read before now is retired.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn content(name: &str) -> Arc<Content> {
        Arc::new(Content {
            analysis: PublicAnalysis {
                name: name.to_owned(),
                status: Status::Completed,
                config: None,
                results: None,
                updated_at: chrono::DateTime::UNIX_EPOCH,
            },
            dataset: None,
            charts: Vec::new(),
        })
    }

    #[test]
    fn an_entry_serves_until_its_ttl() {
        let cache = ContentCache::default();
        let id = Id::new_v4();
        let read_at = Instant::now();
        cache.keep(id, content("a"), cache.generation(), read_at);
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.fresh(id, ttl).unwrap().analysis.name, "a");
        assert!(cache.fresh(id, Duration::ZERO).is_none(), "zero is off");
        let long_ago = read_at - Duration::from_secs(61);
        cache.keep(id, content("b"), cache.generation(), long_ago);
        assert!(cache.fresh(id, ttl).is_none(), "older than the ttl");
    }

    #[test]
    fn a_change_retires_every_entry() {
        let cache = ContentCache::default();
        let (a, b) = (Id::new_v4(), Id::new_v4());
        cache.keep(a, content("a"), cache.generation(), Instant::now());
        cache.keep(b, content("b"), cache.generation(), Instant::now());
        cache.changed();
        let ttl = Duration::from_secs(60);
        assert!(cache.fresh(a, ttl).is_none());
        assert!(cache.fresh(b, ttl).is_none());
    }

    #[test]
    fn content_read_across_a_change_is_not_kept() {
        let cache = ContentCache::default();
        let id = Id::new_v4();
        let before = cache.generation();
        // ... the content is read here, while another request commits a change ...
        cache.changed();
        cache.keep(id, content("old"), before, Instant::now());
        assert!(cache.fresh(id, Duration::from_secs(60)).is_none());
    }
}
