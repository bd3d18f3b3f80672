//! DataFusion's errors as the port's [`QueryFailure`]s: a reason, and a message a user can
//! act on without learning where files live.
use datafusion::error::DataFusionError;
use domain::query::{FailureReason, QueryFailure};

/// Texts replaced in messages (a table's location by its alias).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scrub {
    pub(crate) replacements: Vec<(String, String)>,
}

impl Scrub {
    fn apply(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for (from, to) in &self.replacements {
            out = out.replace(from.as_str(), to);
        }
        out
    }
}

pub(crate) trait Scrubbed {
    fn scrubbed(self, scrub: &Scrub) -> Self;
}

impl Scrubbed for QueryFailure {
    fn scrubbed(self, scrub: &Scrub) -> Self {
        QueryFailure::new(self.reason, scrub.apply(&self.message))
    }
}

/// The failure `err` means, its message scrubbed.
pub(crate) fn failure_of(err: DataFusionError, scrub: &Scrub) -> QueryFailure {
    let root = err.find_root();
    if cluster_unreachable(root) {
        tracing::warn!(error = %root, "the Ballista scheduler could not be reached");
        return QueryFailure::new(
            FailureReason::Data,
            "the query cluster could not be reached; retry later",
        );
    }
    let reason = match root {
        DataFusionError::ResourcesExhausted(_) => FailureReason::Memory,
        DataFusionError::ObjectStore(store) => {
            if matches!(store.as_ref(), object_store::Error::NotFound { .. }) {
                return QueryFailure::new(
                    FailureReason::Data,
                    "a dataset's file is missing from the dataset store",
                );
            }
            tracing::warn!(error = %scrub.apply(&root.to_string()), "dataset store read failed");
            return QueryFailure::new(
                FailureReason::Data,
                "a dataset's file could not be read; retry later",
            );
        }
        DataFusionError::IoError(_) => {
            tracing::warn!(error = %scrub.apply(&root.to_string()), "query I/O failed");
            return QueryFailure::new(
                FailureReason::Data,
                "a dataset's file could not be read; retry later",
            );
        }
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => FailureReason::Invalid,
        _ => FailureReason::Data,
    };
    QueryFailure::new(reason, scrub.apply(&message_of(root)))
}

/// Ballista reports a scheduler it cannot reach (or that drops the connection) as the
/// debug text of the gRPC client's error, which names the scheduler's address.
fn cluster_unreachable(root: &DataFusionError) -> bool {
    matches!(root, DataFusionError::Execution(m)
        if m.starts_with("tonic::transport::Error") || m.starts_with("Status {"))
}

/// The error's own text, without DataFusion's variant prefixes and backtraces.
fn message_of(err: &DataFusionError) -> String {
    let text = match err {
        DataFusionError::SQL(e, _) => e.to_string(),
        DataFusionError::Plan(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::Execution(m)
        | DataFusionError::ResourcesExhausted(m) => m.clone(),
        DataFusionError::SchemaError(e, _) => e.to_string(),
        DataFusionError::ArrowError(e, _) => e.to_string(),
        other => other.to_string(),
    };
    // A backtrace, if the build captured one, is for us, not for the user.
    text.split("\n\nbacktrace:")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_the_root_cause() {
        let memory = DataFusionError::Context(
            "sorting".into(),
            Box::new(DataFusionError::ResourcesExhausted("too much".into())),
        );
        assert_eq!(
            failure_of(memory, &Scrub::default()).reason,
            FailureReason::Memory
        );
        let plan = DataFusionError::Plan("no column x".into());
        let failure = failure_of(plan, &Scrub::default());
        assert_eq!(failure.reason, FailureReason::Invalid);
        assert_eq!(failure.message, "no column x");
    }

    #[test]
    fn an_unreachable_cluster_is_named_without_its_address() {
        let err = DataFusionError::Execution(
            "tonic::transport::Error(Transport, ConnectError(\"tcp connect error\", 10.0.0.5:50050))"
                .into(),
        );
        let failure = failure_of(err, &Scrub::default());
        assert_eq!(failure.reason, FailureReason::Data);
        assert_eq!(
            failure.message,
            "the query cluster could not be reached; retry later"
        );
    }

    #[test]
    fn locations_are_scrubbed() {
        let scrub = Scrub {
            replacements: vec![("iops://datasets/u/d.csv".into(), "table 'data'".into())],
        };
        let err = DataFusionError::Execution("bad value in iops://datasets/u/d.csv line 3".into());
        let failure = failure_of(err, &scrub);
        assert_eq!(failure.reason, FailureReason::Data);
        assert_eq!(failure.message, "bad value in table 'data' line 3");
        let missing = DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "/srv/iops/datasets/u/d.csv".into(),
            source: "gone".into(),
        }));
        let failure = failure_of(missing, &scrub);
        assert!(!failure.message.contains("/srv"), "{}", failure.message);
    }
}
