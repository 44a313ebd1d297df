//! TCP tracking (skeleton; see issue 3).
