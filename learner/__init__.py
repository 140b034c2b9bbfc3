"""The central learner: replay, feature cache, advantages, weighted flow-matching updates."""
