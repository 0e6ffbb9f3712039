"""The PLC contract and the bridge that speaks it.

- ``plc.regmap``: THE register map (``plc/REGISTERS.md`` is rendered from it),
  pure pack/unpack functions.
- ``plc.bridge``: ``PlcBridge`` (async Modbus TCP/RTU client in its own
  thread), ``BridgeConfig``, ``PlcStatus``, and what it records:
  ``EncoderSamples``, ``TriggerLatches``, ``CommandOutcome``.

Typical use from the real-time loop::

    bridge = PlcBridge(BridgeConfig.from_line_config(cfg.plc, mm_per_tick, lead_ms,
                                                     trigger_every_ticks=250))
    bridge.start()                      # returns at once
    bridge.wait_connected(2.0)
    bridge.set_line_params(mm_per_tick=..., deadline_lead_ms=...)  # on calibration
    bridge.submit(pulses)               # never blocks
    bridge.command(PackMLCommand.RESET) # never blocks; fate in command_log()
    status = bridge.snapshot()          # PlcStatus, read-only
    latches = bridge.trigger_latches()  # hardware trigger: frame -> count
    samples = bridge.encoder_samples()  # free-running camera: interpolate
    bridge.stop()
"""
