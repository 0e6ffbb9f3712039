"""The PLC contract and the bridge that speaks it.

- ``plc.regmap``: THE register map (``plc/REGISTERS.md`` is rendered from it),
  pure pack/unpack functions.
- ``plc.bridge``: ``PlcBridge`` (async Modbus TCP/RTU client in its own
  thread), ``BridgeConfig``, ``PlcStatus``.

Typical use from the real-time loop::

    bridge = PlcBridge(BridgeConfig.from_line_config(cfg.plc, mm_per_tick, lead_ms))
    bridge.start()                      # returns at once
    bridge.wait_connected(2.0)
    bridge.submit(pulses)               # never blocks
    status = bridge.snapshot()          # PlcStatus, read-only
    bridge.stop()
"""
