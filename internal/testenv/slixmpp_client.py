#!/usr/bin/python3
"""Scripted slixmpp client for xmppd's interop tests.

Written for Debian's python3-slixmpp 1.8.x; run it with /usr/bin/python3.
It connects to an explicit host and port (never DNS), authenticates, binds,
sends initial presence and then does the optional steps asked for on the
command line. Each event is one JSON line on stdout:

    {"event":"session_start","jid":"<bound full JID>"}
    {"event":"sent"}
    {"event":"message","from":"<full JID>","body":"<text>"}
    {"event":"auth_failed","condition":"<SASL condition, or no-acceptable-mechanism>"}
    {"event":"disconnected","reason":"..."}
    {"event":"timeout"}

Exit status: 0 when every requested step is done, 1 when authentication
fails, 2 on timeout, 3 when the connection ends before the steps are done
(for example a TLS certificate the client does not trust).

The client never authenticates without TLS: slixmpp 1.8 ignores
force_starttls, so plaintext SASL is refused here instead, and a server that
does not offer STARTTLS yields auth_failed with no-acceptable-mechanism.

slixmpp logs go to stderr (--debug for the XML).
"""

import argparse
import asyncio
import sys

sys.dont_write_bytecode = True  # importing slixmpp_common leaves no __pycache__ in the tree
from slixmpp_common import EXIT_OK, EXIT_TIMEOUT, BaseClient, add_common_args, emit, run_main


class Client(BaseClient):
    def __init__(self, args, done):
        super().__init__(args.jid, args, done)
        self.session_started = False
        self.message_sent = args.send_to is None
        self.message_received = args.expect_body is None

        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("message", self.on_message)

    def check_done(self):
        if self.session_started and self.message_sent and self.message_received:
            self.finish(EXIT_OK)

    def on_session_start(self, _event):
        self.session_started = True
        # Initial presence makes this resource available, so that messages to
        # the bare JID are delivered to it (RFC 6121 §8.5.2.1.1).
        self.send_presence()
        emit("session_start", jid=str(self.boundjid.full))
        if self.args.send_to is not None:
            self.send_message(mto=self.args.send_to, mbody=self.args.body, mtype="chat")
            self.message_sent = True
            emit("sent")
        self.check_done()

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        if self.message_received or msg["body"] != self.args.expect_body:
            return
        emit("message", **{"from": str(msg["from"]), "body": msg["body"]})
        self.message_received = True
        self.check_done()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_common_args(
        p,
        jid_help="JID to log in as (a resource is optional)",
        mech_help="use only this SASL mechanism, e.g. SCRAM-SHA-256, SCRAM-SHA-1, PLAIN",
    )
    p.add_argument("--send-to", metavar="JID", help="after session start, send a chat message to JID")
    p.add_argument("--body", default="", help="body of the message for --send-to")
    p.add_argument("--expect-body", metavar="TEXT", help="wait for a message with this body")
    args = p.parse_args(argv)
    if args.send_to is not None and args.body == "":
        p.error("--send-to needs --body")
    return args


async def run(args):
    done = asyncio.get_running_loop().create_future()
    xmpp = Client(args, done)
    xmpp.connect_to_target()

    try:
        code = await asyncio.wait_for(asyncio.shield(done), args.timeout)
    except asyncio.TimeoutError:
        emit("timeout")
        code = EXIT_TIMEOUT
        done.set_result(code)  # our own disconnect below is not news

    xmpp.cancel_connection_attempt()
    await xmpp.disconnect_quietly(wait=1.0, limit=3)
    return code


def main(argv=None):
    return run_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
