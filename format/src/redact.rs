//! Literal redaction of SQL text (placeholder; filled in below).
