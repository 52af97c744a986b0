//! Hardening of secrets (issue 11): no secret echoed by a parse error, masks that never show a
//! short key, per-user caps.
