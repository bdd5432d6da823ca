//! mqadmin and mqbench: not built yet (issue 4).
