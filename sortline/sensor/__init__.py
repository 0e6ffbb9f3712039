"""A second sensor beside the camera: the induction bar's rows (UDP, ``packet``),
their reader thread and ring (``reader``, ``ring``), and their fusion with the
camera's class evidence per track (``fusion``). See ``README.md``."""
