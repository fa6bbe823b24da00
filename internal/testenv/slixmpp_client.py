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
import json
import logging
import ssl
import sys
from pathlib import Path

from slixmpp import ClientXMPP

EXIT_OK = 0
EXIT_AUTH_FAILED = 1
EXIT_TIMEOUT = 2
EXIT_DISCONNECTED = 3


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}, separators=(",", ":")), flush=True)


class Client(ClientXMPP):
    def __init__(self, args, done):
        # sasl_mech restricts SASL to exactly that mechanism (use_mech).
        super().__init__(args.jid, args.password, sasl_mech=args.mech)
        self.args = args
        self.done = done
        self.target = (args.host, args.port)
        self.session_started = False
        self.auth_failures = 0
        self.message_sent = args.send_to is None
        self.message_received = args.expect_body is None

        # No SASL before TLS (unencrypted_plain is already off by default).
        self["feature_mechanisms"].unencrypted_scram = False

        # A client told to use a mechanism without -PLUS does no channel
        # binding, so its gs2 flag must be "n". slixmpp 1.8 says "y" (binding
        # supported, server thought not to) whenever it could bind, which a
        # server offering -PLUS must refuse as a downgrade (RFC 5802 §6).
        if args.mech and not args.mech.endswith("-PLUS"):
            mechs = self["feature_mechanisms"]
            credentials = mechs.sasl_callback

            def without_binding(required, optional):
                creds = credentials(required, optional)
                creds.pop("channel_binding", None)
                return creds

            mechs.sasl_callback = without_binding

        # Only default stream features are registered (starttls, bind,
        # session, rosterver, preapproval, mechanisms): no disco, no roster
        # fetch, nothing that would send requests the server may not answer.
        self.whitespace_keepalive = False

        if args.insecure:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        elif args.cafile:
            self.ca_certs = Path(args.cafile)

        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", self.on_failed_all_auth)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("connection_failed", self.on_connection_failed)

    async def get_dns_records(self, domain, port=None):
        # The tests give an explicit address. slixmpp 1.8 would otherwise
        # resolve the domain and connect to the default port 5222 instead of
        # the one given to connect().
        host, port = self.target
        return [(domain, host, port)]

    def finish(self, code):
        if not self.done.done():
            self.done.set_result(code)

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

    def on_failed_auth(self, failure):
        # One attempt failed; slixmpp goes on with its next mechanism on the
        # same stream, so this is not the end yet.
        self.auth_failures += 1
        if not self.done.done():
            emit("auth_failed", condition=failure["condition"])

    def on_failed_all_auth(self, _event):
        # No mechanism is left to try. Without a preceding failed_auth no
        # offered mechanism was acceptable at all.
        if not self.done.done() and self.auth_failures == 0:
            emit("auth_failed", condition="no-acceptable-mechanism")
        self.finish(EXIT_AUTH_FAILED)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        if self.message_received or msg["body"] != self.args.expect_body:
            return
        emit("message", **{"from": str(msg["from"]), "body": msg["body"]})
        self.message_received = True
        self.check_done()

    def on_connection_failed(self, error):
        # slixmpp retries with back-off; the overall timeout bounds it.
        logging.warning("connection failed: %s", error)

    def on_disconnected(self, reason):
        if not self.done.done():
            emit("disconnected", reason=str(reason) if reason else "")
            self.finish(EXIT_DISCONNECTED)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--jid", required=True, help="JID to log in as (a resource is optional)")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--mode",
        choices=("starttls", "directtls"),
        default="starttls",
        help="STARTTLS on a plain connection (RFC 6120 §5), or TLS from the first byte (XEP-0368)",
    )
    p.add_argument("--mech", help="use only this SASL mechanism, e.g. SCRAM-SHA-256, SCRAM-SHA-1, PLAIN")
    p.add_argument("--cafile", help="PEM certificate(s) to trust, e.g. the server's self-signed cert")
    p.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    p.add_argument("--send-to", metavar="JID", help="after session start, send a chat message to JID")
    p.add_argument("--body", default="", help="body of the message for --send-to")
    p.add_argument("--expect-body", metavar="TEXT", help="wait for a message with this body")
    p.add_argument("--timeout", type=float, default=20, help="overall timeout in seconds (default 20)")
    p.add_argument("--debug", action="store_true", help="log the XML stream to stderr")
    args = p.parse_args(argv)
    if args.send_to is not None and args.body == "":
        p.error("--send-to needs --body")
    return args


async def run(args):
    done = asyncio.get_running_loop().create_future()
    xmpp = Client(args, done)
    if args.mode == "directtls":
        # Direct TLS: use_ssl wraps the socket before the stream header;
        # STARTTLS is then neither needed nor offered.
        xmpp.connect((args.host, args.port), use_ssl=True, force_starttls=False, disable_starttls=True)
    else:
        xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True, disable_starttls=False)
    # connect() names the TLS peer after the host only when it is not an IP
    # literal; the certificate must match the JID's domain either way
    # (RFC 6120 §13.7.2.1). The connection attempt runs after we yield.
    xmpp.default_domain = xmpp.boundjid.domain

    try:
        code = await asyncio.wait_for(asyncio.shield(done), args.timeout)
    except asyncio.TimeoutError:
        emit("timeout")
        code = EXIT_TIMEOUT
        done.set_result(code)  # our own disconnect below is not news

    # Close the stream politely (the send queue is flushed first), but do not
    # let a silent server hold the process.
    xmpp.cancel_connection_attempt()
    if xmpp.is_connected():
        try:
            await asyncio.wait_for(xmpp.disconnect(wait=1.0), 3)
        except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 - best effort
            logging.debug("disconnect: %r", e)
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
