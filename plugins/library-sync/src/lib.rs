//! The library-sync plugin (being written).
