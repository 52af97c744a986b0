//! Hardening of outbound calls (issue 11): an async resolver off the database threads, the
//! complete blocked-address list, allow-list entries with ports, messages of Lanyard's own.
