//! Reliability and abuse: the server under faults and attacks, end to end on loopback.
//! A database that goes away and comes back, several processes writing one SQLite file,
//! a graceful stop under load, hostile input of every kind, and credential guessing
//! across processes. Every error body any of these tests sees is checked for leaks
//! (hashes, SQL, paths, panics). `docs/reliability.md` lists each case and its outcome.
mod billing;
mod concurrency;
mod connections;
mod crash;
mod credentials;
mod hostile;
mod outage;
mod shutdown;
mod support;
