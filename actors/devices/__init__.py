"""Operator devices: anything that speaks the operator wire format to a robot's channel."""
