//! Cursor pagination: newest first, stable under inserts, opaque to callers.
//!
//! A cursor is the `(created_at, id)` of the last item of a page, base64url-encoded. The
//! next page is everything strictly older in that order, so rows inserted meanwhile
//! (which are newer) never shift or repeat items.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use entity::Id;
use sea_orm::{ColumnTrait, Condition};

use crate::error::{Error, Result};

/// Items per page when the caller does not say.
pub const DEFAULT_LIMIT: u64 = 20;
/// Most items a page may hold.
pub const MAX_LIMIT: u64 = 100;

/// A validated page request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page, 1 to [`MAX_LIMIT`].
    pub limit: u64,
    pub(crate) after: Option<Cursor>,
}

impl PageRequest {
    /// Validates the raw `limit` and `cursor` query values.
    pub fn new(limit: Option<i64>, cursor: Option<&str>) -> Result<Self> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as u64,
            Some(_) => {
                return Err(Error::validation(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}"
                )));
            }
        };
        let after = cursor.map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }

    /// The cursor this request resumes after, in its canonical encoding (`None` for a
    /// first page).
    pub fn cursor(&self) -> Option<String> {
        self.after.as_ref().map(Cursor::encode)
    }
}

/// One page of items, and the cursor of the next page if there is one.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass to [`PageRequest::new`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    created_at: NaiveDateTime,
    id: Id,
}

impl Cursor {
    fn encode(&self) -> String {
        let micros = self.created_at.and_utc().timestamp_micros();
        URL_SAFE_NO_PAD.encode(format!("{micros}.{}", self.id.0.simple()))
    }

    fn decode(raw: &str) -> Result<Self> {
        let invalid = || Error::validation("cursor is not one this server issued");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let created_at = chrono::DateTime::from_timestamp_micros(micros)
            .ok_or_else(invalid)?
            .naive_utc();
        if id.len() != 32 {
            return Err(invalid());
        }
        let id = uuid::Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self {
            created_at,
            id: Id(id),
        })
    }

    /// Rows strictly after this cursor in `created_at DESC, id DESC` order.
    pub(crate) fn older_than<C: ColumnTrait>(&self, created_at: C, id: C) -> Condition {
        Condition::any().add(created_at.lt(self.created_at)).add(
            Condition::all()
                .add(created_at.eq(self.created_at))
                .add(id.lt(self.id)),
        )
    }
}

impl Cursor {
    /// Rows strictly after this cursor in `created_at ASC, id ASC` order (oldest-first
    /// lists, such as comments).
    pub(crate) fn newer_than<C: ColumnTrait>(&self, created_at: C, id: C) -> Condition {
        Condition::any().add(created_at.gt(self.created_at)).add(
            Condition::all()
                .add(created_at.eq(self.created_at))
                .add(id.gt(self.id)),
        )
    }
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says there is more.
pub(crate) fn page_from<T>(
    mut rows: Vec<T>,
    limit: u64,
    key: impl Fn(&T) -> (NaiveDateTime, Id),
) -> Page<T> {
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more {
        rows.last().map(|last| {
            let (created_at, id) = key(last);
            Cursor { created_at, id }.encode()
        })
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            created_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456)
                .unwrap()
                .naive_utc(),
            id: Id(uuid::Uuid::new_v4()),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "!!!",
            "bm90LWEtY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12.zz"),
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(Error::Validation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn limit_is_bounded() {
        assert_eq!(PageRequest::new(None, None).unwrap().limit, 20);
        assert_eq!(PageRequest::new(Some(100), None).unwrap().limit, 100);
        assert!(PageRequest::new(Some(101), None).is_err());
        assert!(PageRequest::new(Some(0), None).is_err());
    }
}
