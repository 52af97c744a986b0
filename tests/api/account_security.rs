//! Hardening of accounts and tokens (issue 11): disabled users' tokens stay dead, resolve tokens
//! need a fresh password, registration is no oracle, and rate limits are exact under concurrency.
