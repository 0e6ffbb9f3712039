"""The virtual plant: belt, feeder, fragments, camera, ejection and scoring
(``plant.VirtualPlant``), the virtual PLC (``vplc*``) and the calibration
bench rig (``benchrig*``). See ``sim/README.md``."""
