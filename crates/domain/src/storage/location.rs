//! Where a [`super::Store`] keeps its files, as `IOPS_STORAGE_URL` spells it.
use std::fmt;
use std::path::PathBuf;

/// A folder on this machine, or a bucket (and key prefix) of an S3-compatible service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `file:///absolute/path`, or the default `IOPS_DATA_DIR/datasets`.
    Folder(PathBuf),
    /// `s3://bucket` or `s3://bucket/prefix` (prefix without leading or trailing `/`).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside it (may be empty).
        prefix: String,
    },
}

const EXPECTED: &str = "expected s3://bucket[/prefix] or file:///absolute/path";

impl Location {
    /// Parses a storage URL. The message of an error names what is wrong, not the URL (the
    /// caller knows which setting it read).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e}); {EXPECTED}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "credentials do not belong in the URL (use the AWS_* variables); {EXPECTED}"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("no query or fragment is allowed; {EXPECTED}"));
        }
        match url.scheme() {
            "s3" => {
                let bucket = url.host_str().unwrap_or_default().to_owned();
                if !valid_bucket(&bucket) || url.port().is_some() {
                    return Err(format!(
                        "'{bucket}' is not a bucket name (3 to 63 of a-z, 0-9, '.', '-'); \
                         the endpoint goes in AWS_ENDPOINT_URL"
                    ));
                }
                // From the text as written: URL parsing would resolve `..` away.
                let after_scheme = &raw[raw.find("://").map_or(0, |i| i + 3)..];
                let path = after_scheme.split_once('/').map_or("", |(_, p)| p);
                let prefix = path.trim_matches('/').to_owned();
                if !prefix.is_empty() && !prefix.split('/').all(valid_segment) {
                    return Err(format!(
                        "the key prefix '{prefix}' has an empty, '.' or '..' segment"
                    ));
                }
                Ok(Location::S3 { bucket, prefix })
            }
            "file" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(format!("a file URL names no host; {EXPECTED}"));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| format!("not an absolute path; {EXPECTED}"))?;
                Ok(Location::Folder(path))
            }
            other => Err(format!("unsupported scheme '{other}'; {EXPECTED}")),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Folder(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// S3's rules for new buckets, loosely: what a path-style or virtual-host request can carry.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub(super) fn valid_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buckets_and_folders() {
        assert_eq!(
            Location::parse("s3://iops-data").unwrap(),
            Location::S3 {
                bucket: "iops-data".into(),
                prefix: String::new()
            }
        );
        let nested = Location::parse("s3://iops-data/prod/datasets/").unwrap();
        assert_eq!(
            nested,
            Location::S3 {
                bucket: "iops-data".into(),
                prefix: "prod/datasets".into()
            }
        );
        assert_eq!(nested.to_string(), "s3://iops-data/prod/datasets");
        assert_eq!(
            Location::parse("file:///srv/iops/files").unwrap(),
            Location::Folder(PathBuf::from("/srv/iops/files"))
        );
    }

    #[test]
    fn refuses_what_is_not_a_store() {
        for bad in [
            "",
            "bucket",
            "/srv/files",
            "http://127.0.0.1:9000/bucket",
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://bucket:9000/x",
            "s3://key:secret@bucket",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
            "s3://bucket?region=x",
            "file://host/path",
            "gs://bucket",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        let err = Location::parse("s3://key:secret@bucket").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
