//! Text rules shared by every input the domain stores.
use serde_json::Value;

/// Whether any string or key of `value` holds U+0000. PostgreSQL text cannot store it (the
/// write would fail as a database error) while SQLite would: refusing it up front keeps the
/// two backends alike. Iterative, so nesting depth costs no stack.
pub fn json_contains_nul(value: &Value) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains('\0') {
                        return true;
                    }
                    pending.push(item);
                }
            }
            _ => {}
        }
    }
    false
}

/// The name rule of datasets and analyses: not blank, at most [`crate::MAX_NAME_CHARS`]
/// characters (the columns are `VARCHAR(255)`), no NUL (PostgreSQL text cannot hold one and
/// SQLite would: refused on both alike). Analyses store the name trimmed (`trim`); dataset
/// names are kept as given, as the Python version did.
pub(crate) fn validate_name(name: String, trim: bool) -> crate::Result<String> {
    use crate::{Error, MAX_NAME_CHARS};
    let name = if trim { name.trim().to_owned() } else { name };
    if name.trim().is_empty() {
        return Err(Error::validation("name must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::validation(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.contains('\0') {
        return Err(Error::validation("name must not contain NUL characters"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_found_at_any_depth() {
        assert!(!json_contains_nul(&json!({"a": ["b", {"c": "d"}]})));
        assert!(json_contains_nul(&json!({"a": ["b", {"c": "d\u{0}"}]})));
        assert!(json_contains_nul(&json!({"a\u{0}": 1})));
        // As deep as serde_json parses (its recursion limit is 128).
        let mut deep = json!("\u{0}");
        for _ in 0..120 {
            deep = json!([deep]);
        }
        assert!(json_contains_nul(&deep));
    }
}
