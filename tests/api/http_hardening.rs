//! Hardening at the HTTP edge (issue 11): bounded metric labels, anonymous page views that write
//! nothing, request logs without query strings or spoofed addresses, HSTS.
