//! Data embedded at build time by `build.rs`: the function definitions and `host.json` (read
//! from `functions/` and the repo root, never repeated in code) and the offline question bank.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
