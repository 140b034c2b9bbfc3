"""Everything that runs next to a robot: control loop, chunks, safety, operator channel, bridge."""
