//! Kubernetes operator: not built yet (issue 5).
