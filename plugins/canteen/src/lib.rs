//! The canteen plugin (being written).
