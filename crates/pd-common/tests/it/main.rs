//! Integration tests of `pd-common`, one test binary.

mod names;
mod real_results;
