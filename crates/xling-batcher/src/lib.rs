//! Dynamic batching queue: max batch size, max wait, token budget, deadlines
