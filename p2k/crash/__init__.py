"""Crash testing: seeded workloads, power cuts at the device, fsck, and checks of what survived."""
