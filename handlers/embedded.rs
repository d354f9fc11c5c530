//! Data embedded at build time by `build.rs`: the function definitions and `host.json` (read
//! from `functions/` and the repo root, never repeated in code), the offline question bank and
//! the player page (`handlers/web`).

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
