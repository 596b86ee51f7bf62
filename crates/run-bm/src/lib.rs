//! `run-bm`: native streaming load generator (being built).
