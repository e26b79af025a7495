"""The ops console in the browser: dead letters, sessions, batches, cost, the limiter."""
