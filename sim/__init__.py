"""The virtual plant: ``sim.plant`` (belt, fragments, camera, ejection, ground
truth), ``sim.vplc`` (the virtual PLC, a real Modbus server) and
``sim.benchrig`` (the calibration bench rig)."""
