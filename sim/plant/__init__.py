"""The virtual plant: belt, feeder, fragments, camera renderer, ejection and
ground-truth scoring (see sim/README.md)."""
