"""An OPC UA client in its own process (asyncua's ``Client``), as a SCADA
would connect: the tests run it with the venv's python and read one JSON
object per line from its stdout.

    read URL LINE                          state and counters
    watch URL LINE SECONDS                 subscribe to StateCurrent, print each change
    write URL LINE                         try to write StateCurrent
    subs URL LINE N                        create N subscriptions in one session
    call URL LINE METHOD [security]        call Start/Stop/Reset

security: --user NAME --password PW; --cert C --key K (client certificate;
with --cert-login it is the login too); --server-cert S (then Basic256Sha256
SignAndEncrypt; without it: no security);
--force-no-security: log in over a channel without security even where the
server offers none (as an attacker's client would).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

NS_URI = "urn:sortline:packml"


def out(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def error(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "detail": str(exc)[:200]}


async def client_for(a: argparse.Namespace) -> Client:
    c = Client(a.url, timeout=10)
    if a.force_no_security:  # an attacker's client: no security, whatever the server offers
        secure = Client.find_endpoint

        def secured_endpoint(endpoints: Any, mode: Any, uri: Any) -> Any:
            return secure(endpoints, ua.MessageSecurityMode.SignAndEncrypt,
                          SecurityPolicyBasic256Sha256.URI)  # fmt: skip

        Client.find_endpoint = staticmethod(secured_endpoint)  # type: ignore[method-assign, assignment]
    c.application_uri = "urn:sortline:test-client"
    if a.server_cert:
        await c.set_security(
            SecurityPolicyBasic256Sha256, a.cert, a.key, server_certificate=a.server_cert,
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )  # fmt: skip
    if a.cert_login:  # X.509 identity: the client certificate is the login
        await c.load_client_certificate(a.cert)
        await c.load_private_key(a.key)
    if a.user:
        c.set_user(a.user)
        c.set_password(a.password or "")
    return c


async def main(a: argparse.Namespace) -> int:
    c = await client_for(a)
    try:
        await c.connect()
    except Exception as exc:
        out({"connected": False, **error(exc)})
        return 0
    try:
        ns = await c.get_namespace_index(NS_URI)

        def node(path: str) -> Any:
            return c.get_node(ua.NodeId(ua.String(f"{a.line}.{path}"), ua.Int16(ns)))

        if a.cmd == "read":
            names = ["Status.StateCurrent", "Status.StateCurrentName", "Status.UnitModeCurrent",
                     "Admin.ProdProcessedCount", "Admin.ProdDefectiveCount", "Line.Frames",
                     "Line.Purity", "Line.AlarmsActive", "Line.FragmentsPerSecond"]  # fmt: skip
            values = [await node(n).read_value() for n in names]
            out({"connected": True, **dict(zip(names, values, strict=True))})
        elif a.cmd == "watch":
            seen: asyncio.Queue[Any] = asyncio.Queue()

            class Handler:
                def datachange_notification(self, _n: Any, val: Any, _d: Any) -> None:
                    seen.put_nowait(val)

            sub = await c.create_subscription(50, Handler())
            await sub.subscribe_data_change(node("Status.StateCurrent"))
            out({"subscribed": True})
            loop = asyncio.get_running_loop()
            end = loop.time() + a.n
            while (left := end - loop.time()) > 0:
                try:
                    out({"state": await asyncio.wait_for(seen.get(), left)})
                except TimeoutError:
                    break
        elif a.cmd == "write":
            try:
                await node("Status.StateCurrent").write_value(ua.Variant(2, ua.VariantType.Int32))
                out({"written": True})
            except Exception as exc:
                out({"written": False, **error(exc)})
        elif a.cmd == "subs":
            made, errors = 0, []
            for _ in range(int(a.n)):
                try:
                    await c.create_subscription(500, None)
                    made += 1
                except Exception as exc:
                    errors.append(type(exc).__name__)
            out({"created": made, "errors": errors})
        elif a.cmd == "call":
            line = c.get_node(ua.NodeId(ua.String(a.line), ua.Int16(ns)))
            try:
                result = await line.call_method(
                    ua.NodeId(ua.String(f"{a.line}.{a.method}"), ua.Int16(ns))
                )
                out({"called": True, "result": result})
            except Exception as exc:
                out({"called": False, **error(exc)})
    finally:
        await c.disconnect()
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["read", "watch", "write", "subs", "call"])
    p.add_argument("url")
    p.add_argument("line")
    p.add_argument("n", nargs="?", type=float, default=0)
    p.add_argument("--method", default="Stop")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--server-cert")
    p.add_argument("--force-no-security", action="store_true")
    p.add_argument("--cert-login", action="store_true")
    sys.exit(asyncio.run(main(p.parse_args())))
