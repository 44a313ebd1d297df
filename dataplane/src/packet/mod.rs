//! Zero-copy header views (skeleton; see issue 3).
