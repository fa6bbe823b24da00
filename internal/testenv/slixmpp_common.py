"""Shared parts of slixmpp_client.py and slixmpp_driver.py.

Written for Debian's python3-slixmpp 1.8.x; imported by the two scripts,
which /usr/bin/python3 runs with this directory on sys.path.

Both connect to an explicit host and port (never DNS), authenticate over TLS
only and report what happens as one JSON object per line on stdout.
"""

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


class BaseClient(ClientXMPP):
    """A ClientXMPP set up for the interop tests.

    It logs in with args (see add_common_args), finishes the future done with
    an exit status and reports auth_failed and disconnected events.
    """

    def __init__(self, jid, args, done):
        # sasl_mech restricts SASL to exactly that mechanism (use_mech).
        super().__init__(jid, args.password, sasl_mech=args.mech)
        self.args = args
        self.done = done
        self.target = (args.host, args.port)
        self.auth_failures = 0
        self.closing = False  # we asked for the end: no disconnected event

        # No SASL before TLS (unencrypted_plain is already off by default).
        # slixmpp 1.8 ignores force_starttls, so plaintext SASL is refused
        # here instead, and a server that does not offer STARTTLS yields
        # auth_failed with no-acceptable-mechanism.
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

        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", self.on_failed_all_auth)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("connection_failed", self.on_connection_failed)

    async def get_dns_records(self, domain, port=None):
        # The tests give an explicit address. slixmpp 1.8 would otherwise
        # resolve the domain and connect to the default port 5222 instead of
        # the one given to connect().
        host, port = self.target
        return [(domain, host, port)]

    def connect_to_target(self):
        """Starts connecting to --host and --port as --mode says.

        The connection attempt runs once the caller yields to the loop.
        """
        target = self.target
        if self.args.mode == "directtls":
            # Direct TLS: use_ssl wraps the socket before the stream header;
            # STARTTLS is then neither needed nor offered.
            self.connect(target, use_ssl=True, force_starttls=False, disable_starttls=True)
        else:
            self.connect(target, use_ssl=False, force_starttls=True, disable_starttls=False)
        # connect() names the TLS peer after the host only when it is not an
        # IP literal; the certificate must match the JID's domain either way
        # (RFC 6120 §13.7.2.1).
        self.default_domain = self.boundjid.domain

    async def disconnect_quietly(self, wait, limit):
        """Closes the stream politely (the send queue is flushed first), but
        does not let a silent server hold the process beyond limit seconds."""
        if not self.is_connected():
            return
        try:
            await asyncio.wait_for(self.disconnect(wait=wait), limit)
        except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 - best effort
            logging.debug("disconnect: %r", e)

    def finish(self, code):
        if not self.done.done():
            self.done.set_result(code)

    def on_failed_auth(self, failure):
        # One attempt failed; slixmpp goes on with its next mechanism on the
        # same stream, so this is not the end yet.
        self.auth_failures += 1
        if not self.done.done():
            emit("auth_failed", condition=failure["condition"], text=failure["text"])

    def on_failed_all_auth(self, _event):
        # No mechanism is left to try. Without a preceding failed_auth no
        # offered mechanism was acceptable at all.
        if not self.done.done() and self.auth_failures == 0:
            emit("auth_failed", condition="no-acceptable-mechanism")
        self.finish(EXIT_AUTH_FAILED)

    def on_connection_failed(self, error):
        # slixmpp retries with back-off; the overall timeout bounds it.
        logging.warning("connection failed: %s", error)

    def on_disconnected(self, reason):
        if not self.done.done() and not self.closing:
            emit("disconnected", reason=str(reason) if reason else "")
            self.finish(EXIT_DISCONNECTED)


def add_common_args(p, jid_help, mech_help, mech_default=None, timeout_help="overall timeout in seconds (default 20)"):
    """Adds the login, connection and logging flags both scripts take."""
    p.add_argument("--jid", required=True, help=jid_help)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--mode",
        choices=("starttls", "directtls"),
        default="starttls",
        help="STARTTLS on a plain connection (RFC 6120 §5), or TLS from the first byte (XEP-0368)",
    )
    p.add_argument("--mech", default=mech_default, help=mech_help)
    p.add_argument("--cafile", help="PEM certificate(s) to trust, e.g. the server's self-signed cert")
    p.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    p.add_argument("--timeout", type=float, default=20, help=timeout_help)
    p.add_argument("--debug", action="store_true", help="log the XML stream to stderr")


def run_main(parse_args, run, argv=None):
    """Parses argv (default: the command line), sets up logging to stderr
    and returns the exit status of the coroutine run(args)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(args))
