#!/usr/bin/python3
"""Checks one XMPP server before it is loaded: STARTTLS (RFC 6120 section 5),
the SASL mechanisms offered after it, and a login with PLAIN (RFC 4616) or
SCRAM-SHA-1 (RFC 5802), for which it prints the iteration count the server
announced. Standard library only; the certificate is not verified (the
benchmark's is self-signed).

    bench/probe.py -port 15222 [-user bench1] [-password benchpass] [-mech SCRAM-SHA-1]

Exits 0 when every requested login worked, 1 otherwise.
"""

import argparse
import base64
import hashlib
import hmac
import os
import socket
import ssl
import sys
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


class Stream:
    """One XMPP stream over a socket: sends text, returns top-level elements."""

    def __init__(self, sock, domain):
        self.sock = sock
        self.domain = domain
        self.restart()

    def restart(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.send(
            "<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
            "xmlns='jabber:client' xmlns:stream='%s'>" % (self.domain, NS_STREAM)
        )

    def send(self, text):
        self.sock.sendall(text.encode())

    def next(self):
        """Returns the next complete child of <stream:stream>."""
        while True:
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                    continue
                self.depth -= 1
                if self.depth == 1:
                    return el
                if self.depth == 0:
                    raise RuntimeError("the server closed the stream")
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            self.parser.feed(data)


def tag(ns, local):
    return "{%s}%s" % (ns, local)


def b64(data):
    return base64.b64encode(data).decode()


def scram_sha1(stream, user, password):
    """Runs SCRAM-SHA-1 without channel binding; returns the iteration count."""
    cnonce = b64(os.urandom(18))
    first_bare = "n=%s,r=%s" % (user, cnonce)
    stream.send(
        "<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>"
        % (NS_SASL, b64(("n,," + first_bare).encode()))
    )
    el = stream.next()
    if el.tag != tag(NS_SASL, "challenge"):
        raise RuntimeError("expected a challenge, got %s" % el.tag)
    server_first = base64.b64decode(el.text or "").decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
    if not nonce.startswith(cnonce):
        raise RuntimeError("the server nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
    stored_key = hashlib.sha1(client_key).digest()
    final_without_proof = "c=%s,r=%s" % (b64(b"n,,"), nonce)
    auth_message = ",".join((first_bare, server_first, final_without_proof)).encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha1).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    stream.send(
        "<response xmlns='%s'>%s</response>"
        % (NS_SASL, b64(("%s,p=%s" % (final_without_proof, b64(proof))).encode()))
    )
    el = stream.next()
    if el.tag != tag(NS_SASL, "success"):
        raise RuntimeError("authentication failed: %s" % failure_text(el))
    server_key = hmac.new(salted, b"Server Key", hashlib.sha1).digest()
    want = "v=" + b64(hmac.new(server_key, auth_message, hashlib.sha1).digest())
    got = base64.b64decode(el.text or "").decode()
    if got != want:
        raise RuntimeError("the server's signature is wrong: %r" % got)
    return iterations


def plain(stream, user, password):
    stream.send(
        "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
        % (NS_SASL, b64(("\0%s\0%s" % (user, password)).encode()))
    )
    el = stream.next()
    if el.tag != tag(NS_SASL, "success"):
        raise RuntimeError("authentication failed: %s" % failure_text(el))


def failure_text(el):
    return " ".join(child.tag.split("}")[-1] for child in el) or el.tag


def login(args, mech):
    """Connects, negotiates TLS, logs in with mech and binds; returns a note."""
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    try:
        stream = Stream(sock, args.domain)
        features = stream.next()
        if features.find(tag(NS_TLS, "starttls")) is None:
            raise RuntimeError("no STARTTLS offered")
        before = [m.text for m in features.iter(tag(NS_SASL, "mechanism"))]
        stream.send("<starttls xmlns='%s'/>" % NS_TLS)
        if stream.next().tag != tag(NS_TLS, "proceed"):
            raise RuntimeError("STARTTLS refused")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        tls = ctx.wrap_socket(sock, server_hostname=args.domain)
        stream.sock = tls
        stream.restart()
        features = stream.next()
        offered = [m.text for m in features.iter(tag(NS_SASL, "mechanism"))]
        note = "%s; before TLS: %s; after TLS: %s" % (
            tls.version(),
            " ".join(before) or "-",
            " ".join(offered),
        )
        if mech not in offered:
            raise RuntimeError("%s not offered (%s)" % (mech, note))
        if mech == "PLAIN":
            plain(stream, args.user, args.password)
        else:
            note += "; iterations %d" % scram_sha1(stream, args.user, args.password)
        stream.restart()
        features = stream.next()
        if features.find(tag(NS_BIND, "bind")) is None:
            raise RuntimeError("no resource binding offered after login")
        stream.send(
            "<iq type='set' id='b1'><bind xmlns='%s'><resource>probe</resource>"
            "</bind></iq>" % NS_BIND
        )
        el = stream.next()
        if el.get("type") != "result":
            raise RuntimeError("bind failed")
        stream.send("</stream:stream>")
        return note
    finally:
        sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-host", default="127.0.0.1")
    p.add_argument("-port", type=int, required=True)
    p.add_argument("-domain", default="localhost")
    p.add_argument("-user", default="bench1")
    p.add_argument("-password", default="benchpass")
    p.add_argument(
        "-mech",
        action="append",
        help="SCRAM-SHA-1 or PLAIN; repeatable (default: both)",
    )
    p.add_argument("-timeout", type=float, default=10)
    args = p.parse_args()
    ok = True
    for mech in args.mech or ["SCRAM-SHA-1", "PLAIN"]:
        try:
            note = login(args, mech)
            print("port %d %s login ok: %s" % (args.port, mech, note))
        except (OSError, RuntimeError, ET.ParseError, KeyError, ValueError) as e:
            print("port %d %s login FAILED: %s" % (args.port, mech, e), file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
