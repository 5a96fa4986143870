//! Integration tests: one binary for every HTTP-level test.
