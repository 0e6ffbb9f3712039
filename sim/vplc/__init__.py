"""The virtual PLC: ``core`` (logic, no sockets), ``server`` (Modbus TCP/RTU),
``link`` (in-process twin of the bridge's link). Implements plc/REGISTERS.md."""
