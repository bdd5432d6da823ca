//! Broker: not built yet (issues 3 and 4).
