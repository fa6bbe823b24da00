#!/usr/bin/python3
"""Interactive slixmpp client that a Go test drives step by step.

Written for Debian's python3-slixmpp 1.8.x; run it with /usr/bin/python3.
It connects to an explicit host and port (never DNS), authenticates over TLS
only, binds and then does nothing on its own: no roster fetch, no initial
presence, no answers to subscription requests or probes. The test decides
every stanza the client sends, for roster, presence and offline-message
interop tests (RFC 6121).

Commands come as one JSON object per line on stdin (field "cmd"); events go
out as one JSON object per line on stdout. Commands are read only after
session_start and are sent in the order given; IQ results arrive as events
later. "id" is optional on every stanza command and becomes the stanza's id;
without it slixmpp makes one up, as it does for any stanza it sends.

    {"cmd":"presence","type":"","to":"","show":"","priority":0,"status":""}
        type, to, show, priority and status are optional; sent verbatim.
    {"cmd":"roster_get","ver":"..."}
        ver is optional; when the key is present the ver attribute is sent,
        even empty (RFC 6121 §2.6). -> roster_result or iq_error.
    {"cmd":"roster_set","jid":"...","name":"...","groups":["..."],"remove":true}
        name, groups and remove are optional. -> iq_result or iq_error.
    {"cmd":"message","to":"...","body":"...","type":"chat"} -> sent
    {"cmd":"raw","xml":"<presence/>"}      the text, unchanged, in order
    {"cmd":"abort"}   drop the TCP connection: no </stream>, no presence
    {"cmd":"quit"}    close the stream (</stream:stream>) and exit

Events:

    {"event":"session_start","jid":"<bound full JID>"}
    {"event":"presence","from","to","type","show","status","priority","id","xml"}
    {"event":"roster_result","id","ver","has_ver","empty","items":[item...]}
    {"event":"roster_push","id","from","ver","has_ver","jid","name",
     "subscription","ask","approved","groups","items":[item...]}
        the fields of the first item at the top level, for convenience
    {"event":"iq_result","id"}
    {"event":"iq_error","id","condition","text"}
    {"event":"iq_timeout","id"}
    {"event":"message","from","to","type","id","body","delay","delay_from","xml"}
    {"event":"sent","id"}
    {"event":"stanza_error","kind":"presence|message","from","id","condition","text","xml"}
    {"event":"stream_error","condition","text"}
    {"event":"auth_failed","condition":"<SASL condition, or no-acceptable-mechanism>"}
    {"event":"disconnected","reason"}   the server ended the connection
    {"event":"timeout"}                 no session within --timeout
    {"event":"command_error","text"}    a command this script cannot do
    {"event":"ignored","text","xml"}    a message, presence or iq outside
                                        jabber:client (e.g. xmlns=""), which
                                        the client did not process

    item = {"jid","name","subscription","ask","approved","groups"}

Attributes are reported as received: "type" is "" when absent (available
presence; a normal message), "subscription" is "" when absent, priority is 0
when absent. Roster pushes are answered with an IQ result when they come from
the account itself (or have no from), else with service-unavailable (RFC 6121
§2.1.6); either way the push is reported.

Exit status: 0 after quit, abort or the end of stdin; 1 when authentication
fails; 2 when the session does not start within --timeout; 3 when the server
ends the connection.

slixmpp logs go to stderr (--debug for the XML).
"""

import argparse
import asyncio
import json
import logging
import ssl
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.matcher.base import MatcherBase

EXIT_OK = 0
EXIT_AUTH_FAILED = 1
EXIT_TIMEOUT = 2
EXIT_DISCONNECTED = 3

NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}, separators=(",", ":")), flush=True)


def child_text(elem, name, ns=NS_CLIENT):
    c = elem.find("{%s}%s" % (ns, name))
    return (c.text or "") if c is not None else ""


def xs_bool(value):
    return value in ("true", "1")


def roster_item(item):
    return {
        "jid": item.get("jid", ""),
        "name": item.get("name", ""),
        "subscription": item.get("subscription", ""),
        "ask": item.get("ask", ""),
        "approved": xs_bool(item.get("approved", "")),
        "groups": [g.text or "" for g in item.findall("{%s}group" % NS_ROSTER)],
    }


def roster_query(query):
    """The ver and items of a jabber:iq:roster query element."""
    return {
        "ver": query.get("ver", ""),
        "has_ver": "ver" in query.attrib,
        "items": [roster_item(i) for i in query.findall("{%s}item" % NS_ROSTER)],
    }


def stanza_error(elem):
    """The defined condition and text of a stanza's <error/> child."""
    err = elem.find("{%s}error" % NS_CLIENT)
    if err is None:
        return "", ""
    condition, text = "", ""
    for c in err:
        if not c.tag.startswith("{%s}" % NS_STANZAS):
            continue
        name = c.tag.split("}", 1)[1]
        if name == "text":
            text = c.text or ""
        elif not condition:
            condition = name
    return condition, text


class MatchForeignStanza(MatcherBase):
    """Matches a message, presence or iq outside jabber:client.

    slixmpp, like other clients, ignores such an element (RFC 6120 §4.8.3
    puts stanzas in the content namespace); the test is told about it.
    """

    def __init__(self):
        super().__init__(None)

    def match(self, xml):
        ns, _, name = xml.xml.tag.rpartition("}")
        return name in ("message", "presence", "iq") and ns.lstrip("{") != NS_CLIENT


class Driver(ClientXMPP):
    def __init__(self, args, done):
        jid = args.jid if not args.resource else "%s/%s" % (args.jid.split("/", 1)[0], args.resource)
        # sasl_mech restricts SASL to exactly that mechanism (use_mech).
        super().__init__(jid, args.password, sasl_mech=args.mech)
        self.args = args
        self.done = done
        self.target = (args.host, args.port)
        self.auth_failures = 0
        self.closing = False  # we asked for the end: no disconnected event
        self.commands = asyncio.Queue()
        self.pending = set()  # IQ tasks in flight

        # No SASL before TLS (unencrypted_plain is already off by default).
        self["feature_mechanisms"].unencrypted_scram = False

        # As in slixmpp_client.py: without -PLUS the gs2 flag must be "n",
        # not slixmpp 1.8's "y", which a server offering -PLUS must refuse
        # as a downgrade (RFC 5802 §6).
        if args.mech and not args.mech.endswith("-PLUS"):
            mechs = self["feature_mechanisms"]
            credentials = mechs.sasl_callback

            def without_binding(required, optional):
                creds = credentials(required, optional)
                creds.pop("channel_binding", None)
                return creds

            mechs.sasl_callback = without_binding

        self.whitespace_keepalive = False

        if args.insecure:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        elif args.cafile:
            self.ca_certs = Path(args.cafile)

        # The test answers subscription requests itself.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        # slixmpp's own stanza handlers keep a client-side roster, answer
        # subscriptions and treat roster pushes; replace them with handlers
        # that only report what arrived. Only the default stream features
        # are registered (no disco, no roster fetch, no presence on start).
        for name in ("IM", "IMError", "Presence", "Roster Update"):
            self.remove_handler(name)
        self.register_handler(Callback("Driver Presence", MatchXPath("{%s}presence" % NS_CLIENT), self.on_presence))
        self.register_handler(Callback("Driver Message", MatchXPath("{%s}message" % NS_CLIENT), self.on_message))
        self.register_handler(Callback("Driver Ignored", MatchForeignStanza(), self.on_foreign_stanza))
        self.register_handler(
            Callback("Driver Roster Push", MatchXPath("{%s}iq/{%s}query" % (NS_CLIENT, NS_ROSTER)), self.on_roster_iq)
        )

        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", self.on_failed_all_auth)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("connection_failed", self.on_connection_failed)

    async def get_dns_records(self, domain, port=None):
        # The tests give an explicit address; slixmpp 1.8 would otherwise
        # resolve the domain and use port 5222.
        host, port = self.target
        return [(domain, host, port)]

    def finish(self, code):
        if not self.done.done():
            self.done.set_result(code)

    # Incoming.

    def on_session_start(self, _event):
        emit("session_start", jid=str(self.boundjid.full))
        asyncio.ensure_future(self.serve_commands())

    def on_failed_auth(self, failure):
        # One attempt failed; slixmpp may go on with another mechanism.
        self.auth_failures += 1
        if not self.done.done():
            emit("auth_failed", condition=failure["condition"])

    def on_failed_all_auth(self, _event):
        if not self.done.done() and self.auth_failures == 0:
            emit("auth_failed", condition="no-acceptable-mechanism")
        self.finish(EXIT_AUTH_FAILED)

    def on_presence(self, pres):
        x = pres.xml
        if x.get("type") == "error":
            self.report_error("presence", x, str(pres))
            return
        prio = child_text(x, "priority").strip()
        try:
            prio = int(prio) if prio else 0
        except ValueError:
            prio = 0
        emit(
            "presence",
            **{
                "from": x.get("from", ""),
                "to": x.get("to", ""),
                "type": x.get("type", ""),
                "id": x.get("id", ""),
                "show": child_text(x, "show"),
                "status": child_text(x, "status"),
                "priority": prio,
                "xml": str(pres),
            },
        )

    def on_message(self, msg):
        x = msg.xml
        if x.get("type") == "error":
            self.report_error("message", x, str(msg))
            return
        delay = x.find("{%s}delay" % NS_DELAY)
        emit(
            "message",
            **{
                "from": x.get("from", ""),
                "to": x.get("to", ""),
                "type": x.get("type", ""),
                "id": x.get("id", ""),
                "body": child_text(x, "body"),
                "delay": delay.get("stamp", "") if delay is not None else "",
                "delay_from": delay.get("from", "") if delay is not None else "",
                "xml": str(msg),
            },
        )

    def on_foreign_stanza(self, stanza):
        ns = stanza.xml.tag.rpartition("}")[0].lstrip("{")
        emit("ignored", text="namespace %r" % ns, xml=str(stanza))

    def report_error(self, kind, x, raw):
        condition, text = stanza_error(x)
        emit(
            "stanza_error",
            **{"kind": kind, "from": x.get("from", ""), "id": x.get("id", ""), "condition": condition, "text": text, "xml": raw},
        )

    def on_roster_iq(self, iq):
        x = iq.xml
        if x.get("type") != "set":
            # Results to our own gets are taken by their waiters first; a
            # roster get from elsewhere is not ours to answer.
            if x.get("type") == "get":
                self.reply_error(x, "service-unavailable")
            return
        sender = x.get("from", "")
        q = roster_query(x.find("{%s}query" % NS_ROSTER))
        first = q["items"][0] if q["items"] else roster_item(ET.Element("item"))
        emit("roster_push", **{"id": x.get("id", ""), "from": sender, **q, **first})
        # RFC 6121 §2.1.6: only pushes from the account (or with no from)
        # are legitimate; the client must not accept others.
        if sender and sender.split("/", 1)[0].lower() != self.boundjid.bare.lower():
            self.reply_error(x, "service-unavailable")
            return
        resp = self.Iq(stype="result", sid=x.get("id", ""))
        if sender:
            resp["to"] = sender
        resp.send()

    def reply_error(self, x, condition):
        resp = self.Iq(stype="error", sid=x.get("id", ""))
        if x.get("from"):
            resp["to"] = x.get("from")
        resp["error"]["type"] = "cancel"
        resp["error"]["condition"] = condition
        resp.send()

    def on_stream_error(self, error):
        emit("stream_error", condition=error["condition"], text=error["text"])

    def on_connection_failed(self, error):
        # slixmpp retries with back-off; --timeout bounds it.
        logging.warning("connection failed: %s", error)

    def on_disconnected(self, reason):
        if not self.done.done() and not self.closing:
            emit("disconnected", reason=str(reason) if reason else "")
            self.finish(EXIT_DISCONNECTED)

    # Commands.

    async def serve_commands(self):
        while not self.done.done():
            line = await self.commands.get()
            if line is None:  # end of stdin: the test is gone
                await self.quit()
                return
            try:
                cmd = json.loads(line)
                name = cmd["cmd"]
            except (ValueError, TypeError, KeyError) as e:
                emit("command_error", text="bad command %r: %s" % (line, e))
                continue
            handler = getattr(self, "cmd_" + str(name), None)
            if handler is None:
                emit("command_error", text="unknown command %r" % name)
                continue
            try:
                await handler(cmd)
            except Exception as e:  # noqa: BLE001 - reported to the test
                logging.exception("command %s", name)
                emit("command_error", text="%s: %r" % (name, e))

    async def cmd_presence(self, cmd):
        p = self.Presence()
        self.set_common(p, cmd)
        if cmd.get("type"):
            p.xml.set("type", cmd["type"])
        if cmd.get("show"):
            ET.SubElement(p.xml, "{%s}show" % NS_CLIENT).text = cmd["show"]
        if cmd.get("status") is not None:
            ET.SubElement(p.xml, "{%s}status" % NS_CLIENT).text = cmd["status"]
        if cmd.get("priority") is not None:
            ET.SubElement(p.xml, "{%s}priority" % NS_CLIENT).text = str(int(cmd["priority"]))
        p.send()

    async def cmd_message(self, cmd):
        m = self.Message()
        self.set_common(m, cmd)
        m.xml.set("type", cmd.get("type") or "chat")
        ET.SubElement(m.xml, "{%s}body" % NS_CLIENT).text = cmd.get("body", "")
        m.send()
        emit("sent", id=m.xml.get("id", ""))

    async def cmd_raw(self, cmd):
        self.send(cmd["xml"])  # queued, so it keeps its place among stanzas

    async def cmd_roster_get(self, cmd):
        iq = self.Iq(stype="get")
        self.set_common(iq, cmd)
        q = ET.SubElement(iq.xml, "{%s}query" % NS_ROSTER)
        if "ver" in cmd:
            q.set("ver", cmd["ver"] or "")
        self.track(self.roster_get(iq))

    async def roster_get(self, iq):
        result = await self.iq_result(iq)
        if result is None:
            return
        q = result.xml.find("{%s}query" % NS_ROSTER)
        if q is None:
            emit("roster_result", id=result["id"], ver="", has_ver=False, empty=True, items=[])
        else:
            emit("roster_result", id=result["id"], empty=False, **roster_query(q))

    async def cmd_roster_set(self, cmd):
        iq = self.Iq(stype="set")
        self.set_common(iq, cmd)
        q = ET.SubElement(iq.xml, "{%s}query" % NS_ROSTER)
        item = ET.SubElement(q, "{%s}item" % NS_ROSTER, jid=cmd["jid"])
        if cmd.get("name") is not None:
            item.set("name", cmd["name"])
        if cmd.get("remove"):
            item.set("subscription", "remove")
        for g in cmd.get("groups") or []:
            ET.SubElement(item, "{%s}group" % NS_ROSTER).text = g
        self.track(self.roster_set(iq))

    async def roster_set(self, iq):
        result = await self.iq_result(iq)
        if result is not None:
            emit("iq_result", id=result["id"])

    async def iq_result(self, iq):
        """Sends iq and returns its result; errors are reported, None returned."""
        iq_id = iq["id"]
        try:
            return await iq.send(timeout=self.args.timeout)
        except IqError as e:
            err = e.iq["error"]
            emit("iq_error", id=iq_id, condition=err["condition"], text=err["text"])
        except IqTimeout:
            emit("iq_timeout", id=iq_id)
        return None

    def track(self, coro):
        task = asyncio.ensure_future(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def set_common(self, stanza, cmd):
        if cmd.get("to"):
            stanza["to"] = cmd["to"]
        if cmd.get("id"):
            stanza["id"] = cmd["id"]

    async def cmd_abort(self, _cmd):
        self.closing = True
        # What came before the abort is written first; then the TCP
        # connection is dropped without </stream> or TLS close_notify.
        await self.flush()
        # abort() drops whatever the transport still buffers.
        for _ in range(200):
            if self.transport is None or self.transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        if self.transport is not None:
            self.transport.abort()
        self.finish(EXIT_OK)

    async def cmd_quit(self, _cmd):
        await self.quit()

    async def quit(self):
        self.closing = True
        await self.flush()
        if self.is_connected():
            try:
                await asyncio.wait_for(self.disconnect(wait=2.0), 5)
            except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 - best effort
                logging.debug("disconnect: %r", e)
        self.finish(EXIT_OK)

    async def flush(self):
        try:
            await asyncio.wait_for(self.waiting_queue.join(), 5)
        except asyncio.TimeoutError:
            logging.warning("send queue not flushed")


def read_stdin(loop, queue):
    # A thread, not connect_read_pipe: stdin may be a file, a pipe or a tty.
    for line in sys.stdin:
        line = line.strip()
        if line:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--jid", required=True, help="JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--resource", default="", help="resource to ask for (default: the JID's, else the server's choice)")
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--mode",
        choices=("starttls", "directtls"),
        default="starttls",
        help="STARTTLS on a plain connection (RFC 6120 §5), or TLS from the first byte (XEP-0368)",
    )
    p.add_argument(
        "--mech",
        default="SCRAM-SHA-256",
        help="use only this SASL mechanism (default SCRAM-SHA-256; slixmpp's -PLUS choice fails on TLS 1.3)",
    )
    p.add_argument("--cafile", help="PEM certificate(s) to trust, e.g. the server's self-signed cert")
    p.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    p.add_argument("--timeout", type=float, default=20, help="seconds for the session to start and for each IQ (default 20)")
    p.add_argument("--debug", action="store_true", help="log the XML stream to stderr")
    return p.parse_args(argv)


async def run(args):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    xmpp = Driver(args, done)
    threading.Thread(target=read_stdin, args=(loop, xmpp.commands), daemon=True).start()
    if args.mode == "directtls":
        xmpp.connect((args.host, args.port), use_ssl=True, force_starttls=False, disable_starttls=True)
    else:
        xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True, disable_starttls=False)
    # The certificate must match the JID's domain, not the IP literal
    # (RFC 6120 §13.7.2.1).
    xmpp.default_domain = xmpp.boundjid.domain

    started = loop.create_task(xmpp.wait_until("session_start", args.timeout))
    first, _ = await asyncio.wait({started, done}, return_when=asyncio.FIRST_COMPLETED)
    if started in first and started.exception() is not None and not done.done():
        emit("timeout")
        xmpp.closing = True
        xmpp.finish(EXIT_TIMEOUT)
    elif not started.done():
        started.cancel()
    code = await done

    xmpp.closing = True
    xmpp.cancel_connection_attempt()
    if code != EXIT_OK and xmpp.is_connected():
        try:
            await asyncio.wait_for(xmpp.disconnect(wait=1.0), 3)
        except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 - best effort
            logging.debug("disconnect: %r", e)
    for task in list(xmpp.pending):
        task.cancel()
    return code


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
