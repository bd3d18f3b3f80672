//! Data connections (PHASES.md, phase 7): `data_connections`. (being written)
use crate::Context;

/// External databases a user imports datasets from.
#[derive(Clone)]
pub struct Connections {
    #[allow(dead_code)]
    ctx: Context,
}

impl Connections {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}
