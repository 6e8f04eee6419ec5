//! PostgreSQL process titles (placeholder, filled in below).
