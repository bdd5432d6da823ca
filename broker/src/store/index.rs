//! Index files (being written).
