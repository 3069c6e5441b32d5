//! The taxi-dispatch plugin (being written).
