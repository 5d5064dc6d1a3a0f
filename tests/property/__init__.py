"""Property-based tests (hypothesis): codec, durations, schedules, hook tokens, replay."""
