"""``sortline plant up``: a plant on one machine, for a demo and a test.

- ``postgres``: a PostgreSQL server from the Debian binaries (initdb, pg_ctl);
- ``broker``: mosquitto on loopback;
- ``procs``: child processes that die with the plant, stopped in bounded time;
- ``lines``: one virtual line = one ``sortline run --config <generated toml>``;
- ``plant``: brings them up, watches the lines (restarting one that dies),
  tells what runs where, and takes everything down;
- ``certificate``: one lot certificate across the lines of a plant database.
"""
