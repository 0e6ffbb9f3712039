"""The calibration bench rig: a virtual camera and valve bar for the bench-rig
procedures of ``calibration/``."""
