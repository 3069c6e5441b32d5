//! The authorization matrix (filled in below).
