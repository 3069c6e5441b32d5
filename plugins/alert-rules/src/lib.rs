//! The alert-rules plugin (being written).
