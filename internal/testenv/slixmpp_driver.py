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
    {"cmd":"ping","to":"..."}   XEP-0199 ping (to optional: the server)
        -> iq_result, iq_error or iq_timeout
    {"cmd":"iq","type":"set","to":"...","payload":"<enable xmlns=.../>"}
        an IQ of the given type (default set) whose one child is payload,
        as it is; to is optional -> iq_result (with its xml) or iq_error
    {"cmd":"pubsub_service","error":""}   from now on act as a pubsub
        service (XEP-0060) that takes publishes (XEP-0357's app server):
        each IQ set with <pubsub><publish/> is reported as a publish event
        and answered with a result, or, when error is a condition, with
        that error (type cancel); the error may be changed by a later
        pubsub_service command -> pubsub_service (condition: the error),
        once the mode is in force
    {"cmd":"block","jids":["..."]}   XEP-0191 block through slixmpp's
        xep_0191 plugin -> iq_result or iq_error
    {"cmd":"unblock","jids":["..."]}   unblock (the plugin has no
        unblock-all: jids must not be empty) -> iq_result or iq_error
    {"cmd":"blocklist"}   XEP-0191 block list -> blocklist (text: the
        JIDs, space-separated, as the plugin parsed them) or iq_error
        pubsub_service command
    {"cmd":"upload","path":"...","content_type":"..."}   upload a file
        with slixmpp's XEP-0363 plugin (it finds the service in the server's
        disco items, reads max-file-size, asks for a slot and PUTs)
        -> uploaded (url), file_too_big (slixmpp's own check against the
        service's max-file-size), or upload_error (condition, text)
    {"cmd":"vcard_set","fn":"...","nickname":"...","jid":"...",
     "photo":"<base64>","photo_type":"image/png"}   publish a vCard with
        slixmpp's XEP-0054 plugin: the account's own, or to jid when given;
        with photo, a PHOTO whose BINVAL the plugin encodes from the decoded
        bytes -> iq_result or iq_error
    {"cmd":"disco_info","jid":"..."}   XEP-0030 disco#info of jid with
        slixmpp's XEP-0030 plugin -> disco_info (identities:
        ["category/type"...], features, forms: {FORM_TYPE: {var: [values]}},
        the extended information forms of XEP-0128 as the plugin parsed
        them) or iq_error
    {"cmd":"vcard_get","jid":"..."}   ask the server for the vCard of jid
        (a bare JID; the plugin's own cache is not used) -> vcard (name: FN,
        text: the NICKNAMEs, comma-separated, from, xml) or iq_error
    {"cmd":"bookmarks_set","conferences":[{"jid","name","nick","autojoin"}]}
        store XEP-0048 bookmarks in private XML storage with slixmpp's
        XEP-0049 plugin -> iq_result or iq_error
    {"cmd":"bookmarks_get"}   read them back -> bookmarks (conferences:
        [{"jid","name","nick","autojoin"}...], xml) or iq_error
    {"cmd":"pep_interest","nodes":["..."]}   load slixmpp's personal
        eventing plugins (XEP-0030, XEP-0060, XEP-0115, XEP-0163) and ask for
        notifications of the nodes: "<node>+notify" in the client's
        disco#info (xep_0163 add_interest; for urn:xmpp:avatar:metadata the
        XEP-0084 plugin, which registers it itself). From then on each
        available presence carries the caps (XEP-0115) and the client
        answers the server's disco#info query -> caps (ver: the hash)
    {"cmd":"pep_publish","node":"...","id":"...","payload":"<x/>",
     "options":{"pubsub#access_model":"open"}}   publish to the account's
        node with the XEP-0060 plugin, with publish-options when options is
        given (a submitted pubsub#publish-options form); id is optional
        -> iq_result (xml) or iq_error
    {"cmd":"pep_items","jid":"...","node":"...","ids":["..."]}   retrieve
        a node's items (all, or those of ids) from jid (the account's own
        when absent) -> pep_items (from, node, pep_items) or iq_error
    {"cmd":"avatar_publish","data":"<base64>","type":"image/png"}   publish
        an avatar with slixmpp's XEP-0084 plugin: the data item
        (publish_avatar), then the metadata (publish_avatar_metadata)
        -> avatar_published (id: the data's SHA-1, the items' id) or iq_error
    {"cmd":"avatar_get","jid":"...","id":"..."}   the data item id of jid's
        avatar (retrieve_avatar) -> avatar (from, id, text: the data as
        base64, as the plugin decoded and encoded it again) or iq_error
    {"cmd":"abort"}   drop the TCP connection: no </stream>, no presence
    {"cmd":"quit"}    close the stream (</stream:stream>) and exit

With --sm the client enables XEP-0198 stream management with resumption
(slixmpp's xep_0198 plugin, after binding) and these commands are there too:

    {"cmd":"hold"}    stop handling received data: what arrives from now on
                      is kept aside unparsed, so its stanzas are neither
                      counted nor acknowledged (the client hangs) -> holding
    {"cmd":"wait_held","text":"..."}   wait until the held data contains
                      text (a message id, say: the server has written that
                      stanza and it is unacknowledged)           -> held
    {"cmd":"cut"}     drop the TCP connection (no </stream>, no TLS
                      close_notify) but keep the session's state, held data
                      dropped                                     -> cut
    {"cmd":"resume"}  connect again; the plugin sends <resume/> (XEP-0198
                      §5) after authentication -> resumed, or resume_failed
                      followed by a new session_start (a new session)

With --mam the client loads slixmpp's XEP-0313 plugin (and the XEPs it
needs: 0030, 0004, 0059, 0297) and this command is there too:

    {"cmd":"mam","jid":"...","with":"...","reverse":false,"max":10}
        page through an archive with the plugin's iterator: the account's
        own, or the one at jid (a room's, XEP-0313 with XEP-0045)
        (XEP-0059 paging, after the last id, or before the first with
        reverse); jid, with and max are optional -> mam_results with every
        message in the order the plugin yields them, or iq_error


    {"event":"session_start","jid":"<bound full JID>"}   once, or again
                                        after a failed resumption
    {"event":"presence","from","to","type","show","status","priority","id","xml"}
    {"event":"roster_result","id","ver","has_ver","empty","items":[item...]}
    {"event":"roster_push","id","from","ver","has_ver","jid","name",
     "subscription","ask","approved","groups","items":[item...]}
        the fields of the first item at the top level, for convenience
    {"event":"iq_result","id","xml"}
    {"event":"publish","from","id","node","summary":{var: value},
     "options":{var: [values]},"xml"}   a pubsub publish (pubsub_service):
        summary are the fields of the data form in the item's payload,
        options those of <publish-options/>, FORM_TYPE included
    {"event":"iq_error","id","condition","text"}
    {"event":"iq_timeout","id"}
    {"event":"message","from","to","type","id","body","delay","delay_from",
     "stanza_ids":[{"by","id"}...],"xml"}   (archive results are not reported,
        nor, after pep_interest, pubsub notifications)
    {"event":"pubsub_event","from","id","node","delay","delay_from",
     "pep_items":[{"id","xml"}...],"retracted":["..."],"xml"}
        a notification of published or retracted items (XEP-0060 §7.1.2)
        as the XEP-0060 plugin raised it (pubsub_publish, pubsub_retract):
        once per message, whatever its number of items
    {"event":"caps","ver"}   the client's XEP-0115 hash after pep_interest
    {"event":"pep_items","id","from","node","pep_items":[{"id","xml"}...]}
    {"event":"avatar_published","id"}   {"event":"avatar","from","id","text"}
    {"event":"mam_results","id","results":[{"id","from","to","body","stamp","real_jid"}...]}
        real_jid: the jid of the forwarded message's muc#user item (a
        room archive's sender, for those who may see it), else ""
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
    With --sm:
    {"event":"sm_enabled","id","resume","max"}   <enabled/> (XEP-0198 §3)
    {"event":"sm_failed","condition","text"}     <failed/> to <enable/>
    {"event":"resumed","id","h"}   <resumed/>: id is the previd
    {"event":"resume_failed","condition","text"}   <failed/> to <resume/>
    {"event":"holding"}  {"event":"held","bytes"}  {"event":"cut","bytes","h"}
    With --register (XEP-0077 §3.1 before signing in, offered or not):
    {"event":"registered"}   the account was created; signing in follows
    {"event":"register_error","condition","text"}   then the script ends (1)

    item = {"jid","name","subscription","ask","approved","groups"}

Attributes are reported as received: "type" is "" when absent (available
presence; a normal message), "subscription" is "" when absent, priority is 0
when absent. Roster pushes are answered with an IQ result when they come from
the account itself (or have no from), else with service-unavailable (RFC 6121
§2.1.6); either way the push is reported.

Exit status: 0 after quit, abort or the end of stdin; 1 when authentication
fails; 2 when the session does not start within --timeout; 3 when the server
ends the connection (not after cut).

slixmpp logs go to stderr (--debug for the XML).
"""

import argparse
import asyncio
import base64
import json
import logging
import sys
import threading
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import StreamFeatures
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.matcher.base import MatcherBase

sys.dont_write_bytecode = True  # importing slixmpp_common leaves no __pycache__ in the tree
from slixmpp_common import EXIT_AUTH_FAILED, EXIT_OK, EXIT_TIMEOUT, BaseClient, add_common_args, emit, run_main
from slixmpp_pep import PEPCommands

NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_EVENT = NS_PUBSUB + "#event"


def child_text(elem, name, ns=NS_CLIENT):
    c = elem.find("{%s}%s" % (ns, name))
    return (c.text or "") if c is not None else ""


def form_fields(x):
    """The fields of a jabber:x:data form: var -> list of values."""
    out = {}
    if x is None:
        return out
    for f in x.findall("{%s}field" % NS_DATA):
        out[f.get("var", "")] = [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
    return out


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


class Driver(PEPCommands, BaseClient):
    def __init__(self, args, done):
        jid = args.jid if not args.resource else "%s/%s" % (args.jid.split("/", 1)[0], args.resource)
        super().__init__(jid, args, done)
        self.commands = asyncio.Queue()
        self.pending = set()  # IQ tasks in flight
        self.serving = False  # the command loop runs (from the first session_start)
        # Stream management (--sm).
        self.cutting = False  # the test cut the connection: no disconnected event
        self.resuming = False  # <resume/> sent on the new connection
        self.holding = False  # received data is kept aside, not parsed
        self.held = b""
        self.held_waiter = None  # (text, future) of a wait_held
        self.register_tried = False  # --register: the feature ran
        self.pubsub_error = None  # pubsub_service: None (off), "" or an error condition
        self.last_event = None  # the notification last reported (slixmpp_pep)

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

        self.register_handler(
            Callback("Driver Publish", MatchXPath("{%s}iq/{%s}pubsub" % (NS_CLIENT, NS_PUBSUB)), self.on_pubsub_iq)
        )

        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("stream_error", self.on_stream_error)

        if args.mam:
            self.register_plugin("xep_0313")
        if args.register:
            # The plugin for its stanzas; the feature's handler is ours, to
            # report what happens, and the feature is added to the features
            # after TLS when the server does not offer it (the plugin's
            # force_registration does not see TLS on slixmpp 1.8's asyncio
            # transport), so that such a server is asked anyway.
            self.register_plugin("xep_0077")
            self.register_feature("register", self.on_register_feature, restart=False, order=50)
            self.add_filter("in", self.force_register)
        if args.sm:
            # XEP-0198: enable after binding, ask for resumption (§5).
            self.register_plugin("xep_0198")
            self["xep_0198"].allow_resume = True
            self.add_event_handler("sm_enabled", self.on_sm_enabled)
            self.add_event_handler("sm_failed", self.on_sm_failed)
            self.add_event_handler("session_resumed", self.on_sm_resumed)

    # Incoming.

    def force_register(self, stanza):
        if isinstance(stanza, StreamFeatures) and "mechanisms" not in self.features:
            if "starttls" in self.features or self.args.mode == "directtls":
                stanza.enable("register")
        return stanza

    async def on_register_feature(self, _features):
        # Registering the feature again (over the plugin's) lists it twice in
        # slixmpp's order: the second call has nothing left to do.
        if "mechanisms" in self.features or self.register_tried:
            return False
        self.register_tried = True
        # slixmpp 1.8 holds back every IQ until a session starts (its own
        # XEP-0077 plugin included); registration comes before it.
        self._always_send_everything = True
        try:
            get = self.Iq()
            get["type"] = "get"
            get.enable("register")
            await get.send(timeout=self.args.timeout)
            iq = self.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = self.boundjid.user
            iq["register"]["password"] = self.password
            await iq.send(timeout=self.args.timeout)
        except IqError as e:
            err = e.iq["error"]
            emit("register_error", condition=err["condition"], text=err["text"])
            self.finish(EXIT_AUTH_FAILED)
            return True
        except IqTimeout:
            emit("register_error", condition="timeout", text="")
            self.finish(EXIT_AUTH_FAILED)
            return True
        finally:
            self._always_send_everything = False
        emit("registered")
        # Done (slixmpp then signs in on this stream, as its plugin does).
        return True

    def on_session_start(self, _event):
        # A second one follows a failed resumption: a new session on the
        # connection the test asked for, with the same command loop.
        self.resuming = False
        emit("session_start", jid=str(self.boundjid.full))
        if not self.serving:
            self.serving = True
            asyncio.ensure_future(self.serve_commands())

    def on_sm_enabled(self, enabled):
        x = enabled.xml
        emit("sm_enabled", id=x.get("id", ""), resume=xs_bool(x.get("resume", "")), max=x.get("max", ""))

    def on_sm_failed(self, failed):
        # <failed/> carries a stanza error condition (XEP-0198 §3, §5).
        condition, text = "", child_text(failed.xml, "text", NS_STANZAS)
        for c in failed.xml:
            if c.tag.startswith("{%s}" % NS_STANZAS) and not c.tag.endswith("}text"):
                condition = c.tag.split("}", 1)[1]
                break
        if self.resuming:
            self.resuming = False
            emit("resume_failed", condition=condition, text=text)
        else:
            emit("sm_failed", condition=condition, text=text)

    def on_sm_resumed(self, resumed):
        self.resuming = False
        emit("resumed", id=resumed.xml.get("previd", ""), h=int(resumed.xml.get("h", "0") or 0))

    def data_received(self, data):
        # hold: bytes that arrive are the server's written stanzas, which
        # the client neither parses, counts nor acknowledges.
        if self.holding:
            self.held += data
            if self.held_waiter is not None and self.held_waiter[0] in self.held:
                if not self.held_waiter[1].done():
                    self.held_waiter[1].set_result(None)
                self.held_waiter = None
            return
        super().data_received(data)

    def on_disconnected(self, reason):
        if self.cutting:
            return
        super().on_disconnected(reason)

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
        if x.find("{%s}result" % NS_MAM) is not None:
            return  # an archive result: the mam command reports it
        if "xep_0060" in self.plugin and x.find("{%s}event" % NS_EVENT) is not None:
            return  # a notification: on_pubsub_event reports it
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
                "stanza_ids": [{"by": e.get("by", ""), "id": e.get("id", "")} for e in x.findall("{%s}stanza-id" % NS_SID)],
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

    def on_pubsub_iq(self, iq):
        x = iq.xml
        if x.get("type") not in ("get", "set"):
            return  # results to our own requests are taken by their waiters
        publish = x.find("{%s}pubsub/{%s}publish" % (NS_PUBSUB, NS_PUBSUB))
        if self.pubsub_error is None or x.get("type") != "set" or publish is None:
            self.reply_error(x, "service-unavailable")
            return
        payload = publish.find("{%s}item" % NS_PUBSUB)
        summary = {}
        if payload is not None:
            for item_payload in payload:
                summary = {k: (v[0] if v else "") for k, v in form_fields(item_payload.find("{%s}x" % NS_DATA)).items()}
        opts = x.find("{%s}pubsub/{%s}publish-options/{%s}x" % (NS_PUBSUB, NS_PUBSUB, NS_DATA))
        emit(
            "publish",
            **{
                "from": x.get("from", ""),
                "id": x.get("id", ""),
                "node": publish.get("node", ""),
                "summary": summary,
                "options": form_fields(opts),
                "xml": str(iq),
            },
        )
        if self.pubsub_error:
            self.reply_error(x, self.pubsub_error)
            return
        resp = self.Iq(stype="result", sid=x.get("id", ""))
        if x.get("from"):
            resp["to"] = x.get("from")
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

    async def cmd_mam(self, cmd):
        rsm = {"max": int(cmd["max"])} if cmd.get("max") else None
        with_jid = cmd.get("with") or None
        archive = cmd.get("jid") or None
        results = []
        try:
            async for msg in self["xep_0313"].iterate(jid=archive, with_jid=with_jid, reverse=bool(cmd.get("reverse")), rsm=rsm):
                res = msg["mam_result"]
                fwd = res["forwarded"]
                inner = fwd["stanza"]
                item = inner.xml.find("{%s}x/{%s}item" % (NS_MUC_USER, NS_MUC_USER))
                results.append(
                    {
                        "id": res["id"],
                        "from": str(inner["from"]),
                        "to": str(inner["to"]),
                        "body": inner["body"],
                        "stamp": fwd["delay"]["stamp"].isoformat() if fwd["delay"]["stamp"] else "",
                        "real_jid": item.get("jid", "") if item is not None else "",
                    }
                )
        except IqError as e:
            condition, text = stanza_error(e.iq.xml)
            emit("iq_error", id=cmd.get("id", ""), condition=condition, text=text)
            return
        emit("mam_results", id=cmd.get("id", ""), results=results)

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

    async def cmd_iq(self, cmd):
        iq = self.Iq(stype=cmd.get("type") or "set")
        self.set_common(iq, cmd)
        iq.xml.append(ET.fromstring(cmd["payload"]))
        self.track(self.any_iq(iq))

    async def any_iq(self, iq):
        result = await self.iq_result(iq)
        if result is not None:
            emit("iq_result", id=result["id"], xml=str(result))

    async def cmd_pubsub_service(self, cmd):
        self.pubsub_error = cmd.get("error") or ""
        emit("pubsub_service", condition=self.pubsub_error)

    async def cmd_upload(self, cmd):
        if "xep_0363" not in self.plugin:
            self.register_plugin("xep_0030")
            self.register_plugin("xep_0363")
        self.track(self.upload(cmd))

    async def upload(self, cmd):
        from slixmpp.plugins.xep_0363.http_upload import FileTooBig, FileUploadError

        plugin = self["xep_0363"]
        try:
            if plugin.upload_service is None:
                # The plugin's own discovery (XEP-0030 get_info_from_domain)
                # fails on Python 3.11 in Debian's slixmpp (it passes
                # coroutines to asyncio.wait): find the service as it would,
                # from the server's items, and read max-file-size likewise.
                await self.find_upload_service(plugin)
            url = await plugin.upload_file(
                cmd["path"], content_type=cmd.get("content_type"), timeout=self.args.timeout
            )
        except FileTooBig as e:
            emit("file_too_big", text=str(e))
        except IqError as e:
            err = e.iq["error"]
            emit("upload_error", condition=err["condition"], text=err["text"])
        except (FileUploadError, IqTimeout) as e:
            emit("upload_error", text=repr(e))
        else:
            emit("uploaded", url=url)

    async def find_upload_service(self, plugin):
        disco = self["xep_0030"]
        items = await disco.get_items(jid=self.boundjid.domain, timeout=self.args.timeout)
        for item in items["disco_items"]["items"]:
            info = await disco.get_info(jid=item[0], timeout=self.args.timeout)
            di = info["disco_info"]
            if ("store", "file") not in [(i[0], i[1]) for i in di["identities"]] or NS_UPLOAD not in di["features"]:
                continue
            plugin.upload_service = info["from"]
            for form in di.iterables:
                values = form["values"]
                if values.get("FORM_TYPE") == [NS_UPLOAD]:
                    plugin.max_file_size = int(values["max-file-size"])
            return

    async def cmd_ping(self, cmd):
        iq = self.Iq(stype="get")
        self.set_common(iq, cmd)
        ET.SubElement(iq.xml, "{%s}ping" % NS_PING)
        self.track(self.ping(iq))

    async def ping(self, iq):
        result = await self.iq_result(iq)
        if result is not None:
            emit("iq_result", id=result["id"])

    def blocking(self):
        """slixmpp's XEP-0191 plugin, registered on first use."""
        if "xep_0191" not in self.plugin:
            self.register_plugin("xep_0191")
        return self["xep_0191"]

    async def cmd_block(self, cmd):
        self.track(self.block_op(self.blocking().block, cmd.get("jids") or []))

    async def cmd_unblock(self, cmd):
        self.track(self.block_op(self.blocking().unblock, cmd.get("jids") or []))

    async def block_op(self, op, jids):
        try:
            result = await op(jids, timeout=self.args.timeout)
            emit("iq_result", id=result["id"], xml=str(result))
        except IqError as e:
            err = e.iq["error"]
            emit("iq_error", id=e.iq["id"], condition=err["condition"], text=err["text"])
        except IqTimeout:
            emit("iq_timeout")

    async def cmd_blocklist(self, _cmd):
        self.track(self.blocklist())

    async def blocklist(self):
        def report(result):
            items = sorted(str(j) for j in result["blocklist"]["items"])
            emit("blocklist", id=result["id"], text=" ".join(items))

        await self.stanza_op(self.blocking().get_blocked(timeout=self.args.timeout), report)

    async def stanza_op(self, coro, on_result):
        """Awaits an IQ a plugin sent and reports it; errors as iq_result does."""
        try:
            result = await coro
        except IqError as e:
            err = e.iq["error"]
            emit("iq_error", id=e.iq["id"], condition=err["condition"], text=err["text"])
            return
        except IqTimeout:
            emit("iq_timeout")
            return
        on_result(result)

    def vcard_plugin(self):
        """slixmpp's XEP-0054 plugin, registered on first use."""
        if "xep_0054" not in self.plugin:
            self.register_plugin("xep_0054")
        return self["xep_0054"]

    async def cmd_vcard_set(self, cmd):
        plugin = self.vcard_plugin()
        vcard = plugin.make_vcard()
        vcard["FN"] = cmd.get("fn") or ""
        vcard["NICKNAME"] = cmd.get("nickname") or ""
        if cmd.get("photo"):
            vcard["PHOTO"]["TYPE"] = cmd.get("photo_type") or "image/png"
            vcard["PHOTO"]["BINVAL"] = base64.b64decode(cmd["photo"])
        # publish_vcard returns nothing: report the result ourselves.
        self.track(
            self.stanza_op(plugin.publish_vcard(vcard, jid=cmd.get("jid"), timeout=self.args.timeout), lambda _r: emit("iq_result"))
        )

    async def cmd_vcard_get(self, cmd):
        plugin = self.vcard_plugin()

        def report(result):
            v = result["vcard_temp"]
            nick = v["NICKNAME"]  # the plugin gives a list of nicknames
            if isinstance(nick, list):
                nick = ",".join(nick)
            emit("vcard", id=result["id"], **{"from": str(result["from"])}, name=v["FN"], text=nick, xml=str(result))

        self.track(self.stanza_op(plugin.get_vcard(cmd["jid"], local=False, timeout=self.args.timeout), report))

    async def cmd_disco_info(self, cmd):
        # XEP-0128's plugin, so that the forms in disco#info are parsed.
        for name in ("xep_0030", "xep_0128"):
            if name not in self.plugin:
                self.register_plugin(name)

        def report(result):
            di = result["disco_info"]
            forms = {}
            for form in di.iterables:
                values = dict(form.get_values())
                form_type = values.pop("FORM_TYPE", [""])
                form_type = form_type[0] if isinstance(form_type, list) else form_type
                forms[form_type] = {k: v if isinstance(v, list) else [v] for k, v in values.items()}
            emit(
                "disco_info",
                id=result["id"],
                **{"from": str(result["from"])},
                identities=["%s/%s" % (i[0], i[1]) for i in di["identities"]],
                features=list(di["features"]),
                forms=forms,
                xml=str(result),
            )

        self.track(self.stanza_op(self["xep_0030"].get_info(jid=cmd["jid"], timeout=self.args.timeout), report))

    def private_plugin(self):
        """slixmpp's XEP-0049 plugin, with XEP-0048's bookmarks stanza."""
        if "xep_0049" not in self.plugin:
            from slixmpp.plugins.xep_0048.stanza import Bookmarks

            self.register_plugin("xep_0049")
            self["xep_0049"].register(Bookmarks)
        return self["xep_0049"]

    async def cmd_bookmarks_set(self, cmd):
        from slixmpp.plugins.xep_0048.stanza import Bookmarks

        plugin = self.private_plugin()
        marks = Bookmarks()
        for c in cmd.get("conferences") or []:
            marks.add_conference(c["jid"], c.get("nick") or "", name=c.get("name"), autojoin=c.get("autojoin"))
        self.track(
            self.stanza_op(plugin.store(marks, timeout=self.args.timeout), lambda r: emit("iq_result", id=r["id"]))
        )

    async def cmd_bookmarks_get(self, _cmd):
        plugin = self.private_plugin()

        def report(result):
            confs = [
                {"jid": str(c["jid"]), "name": c["name"], "nick": c["nick"], "autojoin": bool(c["autojoin"])}
                for c in result["private"]["bookmarks"]["conferences"]
            ]
            emit("bookmarks", id=result["id"], conferences=confs, xml=str(result))

        self.track(self.stanza_op(plugin.retrieve("bookmarks", timeout=self.args.timeout), report))

    def need_sm(self, name):
        if not self.args.sm:
            raise RuntimeError("%s needs --sm" % name)

    async def cmd_hold(self, _cmd):
        self.need_sm("hold")
        self.holding = True
        emit("holding")

    async def cmd_wait_held(self, cmd):
        self.need_sm("wait_held")
        if not self.holding:
            raise RuntimeError("wait_held needs hold first")
        text = cmd["text"].encode()
        if text not in self.held:
            fut = asyncio.get_running_loop().create_future()
            self.held_waiter = (text, fut)
            await fut
        emit("held", bytes=len(self.held))

    async def cmd_cut(self, _cmd):
        self.need_sm("cut")
        if self.transport is None:
            raise RuntimeError("not connected")
        # What the test sent before is written first, as with abort.
        await self.flush()
        self.cutting = True
        held = len(self.held)
        self.holding, self.held, self.held_waiter = False, b"", None
        # abort() closes the socket at once: no </stream:stream>, no TLS
        # close_notify. The plugin keeps sm_id and its counters because it
        # turned end_session_on_disconnect off when stream management was
        # enabled.
        lost = self.disconnected  # set (and replaced) by connection_lost
        self.transport.abort()
        await asyncio.wait_for(lost, 5)
        emit("cut", bytes=held, h=self["xep_0198"].handled)

    async def cmd_resume(self, _cmd):
        self.need_sm("resume")
        if self.transport is not None:
            raise RuntimeError("resume while connected")
        self.cutting = False
        self.resuming = bool(self["xep_0198"].sm_id)
        self.connect_to_target()

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
        await self.disconnect_quietly(wait=2.0, limit=5)
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
    add_common_args(
        p,
        jid_help="JID to log in as",
        mech_default="SCRAM-SHA-256",
        mech_help="use only this SASL mechanism (default SCRAM-SHA-256; slixmpp's -PLUS choice fails on TLS 1.3)",
        timeout_help="seconds for the session to start and for each IQ (default 20)",
    )
    p.add_argument("--resource", default="", help="resource to ask for (default: the JID's, else the server's choice)")
    p.add_argument("--sm", action="store_true", help="enable XEP-0198 stream management with resumption")
    p.add_argument("--mam", action="store_true", help="load the XEP-0313 plugin for the mam command")
    p.add_argument("--register", action="store_true", help="create the account by in-band registration (XEP-0077) before signing in")
    return p.parse_args(argv)


async def run(args):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    xmpp = Driver(args, done)
    threading.Thread(target=read_stdin, args=(loop, xmpp.commands), daemon=True).start()
    xmpp.connect_to_target()

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
    if code != EXIT_OK:
        await xmpp.disconnect_quietly(wait=1.0, limit=3)
    for task in list(xmpp.pending):
        task.cancel()
    return code


def main(argv=None):
    return run_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
