"""Helpers the tests share: real-enough parts a test drives (scripted policies and robots, a
robot-server subprocess, hand-built episodes and comparison results, a tiny saved policy) and
the bad-input tally. Test modules import from here, never from each other."""
