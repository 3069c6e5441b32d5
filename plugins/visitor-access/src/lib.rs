//! The visitor-access plugin (being written).
