//! Server groups repository (filled in below).
