//! Product events (PHASES.md, phase 7): `analytics_events`. (being written)
use crate::Context;

/// Product events: ingest, server-side events, the admin summary, retention.
#[derive(Clone)]
pub struct Events {
    #[allow(dead_code)]
    ctx: Context,
}

impl Events {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}
