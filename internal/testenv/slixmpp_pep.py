"""The personal eventing commands of slixmpp_driver.py (XEP-0163).

Written for Debian's python3-slixmpp 1.8.x. A mixin of the driver's client:
it uses the driver's track, stanza_op and args, and is documented in the
driver's doc string (pep_interest, pep_publish, pep_items, avatar_publish,
avatar_get; the pubsub_event, caps, pep_items, avatar_published and avatar
events). The plugins are slixmpp's own: XEP-0030, XEP-0060, XEP-0115,
XEP-0163 and XEP-0084, registered on first use.
"""

import base64
import xml.etree.ElementTree as ET


from slixmpp_common import emit

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DELAY = "urn:xmpp:delay"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"


class PEPCommands:
    def pep(self):
        """slixmpp's personal eventing plugins, registered on first use."""
        if "xep_0163" not in self.plugin:
            for name in ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163"):
                self.register_plugin(name)
            self.add_event_handler("pubsub_publish", self.on_pubsub_event)
            self.add_event_handler("pubsub_retract", self.on_pubsub_event)
        return self["xep_0163"]

    def avatar_plugin(self):
        """slixmpp's XEP-0084 plugin; registering it asks for metadata
        notifications (its session_bind registers the node with xep_0163)."""
        self.pep()
        if "xep_0084" not in self.plugin:
            self.register_plugin("xep_0084")
        return self["xep_0084"]

    def on_pubsub_event(self, msg):
        # The plugin raises its event once per item, each time with the
        # whole message: report the message once.
        if msg is self.last_event:
            return
        self.last_event = msg
        items = msg["pubsub_event"]["items"]
        published, retracted = [], []
        for item in items:
            if item.name == "retract":
                retracted.append(item["id"])
            else:
                payload = item["payload"]
                published.append({"id": item["id"], "xml": ET.tostring(payload, encoding="unicode") if payload is not None else ""})
        delay = msg.xml.find("{%s}delay" % NS_DELAY)
        emit(
            "pubsub_event",
            **{
                "from": str(msg["from"]),
                "id": msg["id"],
                "node": items["node"],
                "delay": delay.get("stamp", "") if delay is not None else "",
                "delay_from": delay.get("from", "") if delay is not None else "",
                "pep_items": published,
                "retracted": retracted,
                "xml": str(msg),
            },
        )

    async def cmd_pep_interest(self, cmd):
        pep = self.pep()
        nodes = [n for n in cmd.get("nodes") or [] if n != NS_AVATAR_META]
        if len(nodes) != len(cmd.get("nodes") or []):
            self.avatar_plugin()
        if nodes:
            pep.add_interest(nodes)
        # add_interest updates the caps in a task of its own: update them
        # here too, so that the hash reported is the one the next presence
        # carries.
        caps = self["xep_0115"]
        await caps.update_caps(broadcast=False)
        emit("caps", ver=await caps.get_verstring())

    async def cmd_pep_publish(self, cmd):
        self.pep()
        options = None
        if cmd.get("options"):
            options = self["xep_0004"].make_form(ftype="submit")
            options.add_field(var="FORM_TYPE", ftype="hidden", value=NS_PUBSUB + "#publish-options")
            for var, value in cmd["options"].items():
                options.add_field(var=var, value=value)
        send = self["xep_0060"].publish(
            None, cmd["node"], id=cmd.get("id") or None, payload=ET.fromstring(cmd["payload"]), options=options, timeout=self.args.timeout
        )
        self.track(self.stanza_op(send, lambda r: emit("iq_result", id=r["id"], xml=str(r))))

    async def cmd_pep_items(self, cmd):
        self.pep()

        def report(result):
            items = result["pubsub"]["items"]
            out = []
            for item in items:
                payload = item["payload"]
                out.append({"id": item["id"], "xml": ET.tostring(payload, encoding="unicode") if payload is not None else ""})
            emit("pep_items", **{"id": result["id"], "from": str(result["from"]), "node": items["node"], "pep_items": out})

        send = self["xep_0060"].get_items(cmd.get("jid") or None, cmd["node"], item_ids=cmd.get("ids") or None, timeout=self.args.timeout)
        self.track(self.stanza_op(send, report))

    async def cmd_avatar_publish(self, cmd):
        self.track(self.avatar_publish(cmd))

    async def avatar_publish(self, cmd):
        plugin = self.avatar_plugin()
        data = base64.b64decode(cmd["data"])
        info = {"id": plugin.generate_id(data), "type": cmd.get("type") or "image/png", "bytes": len(data)}

        async def both():
            # The data first, then the metadata that points at it (XEP-0084 §4.1).
            await plugin.publish_avatar(data, timeout=self.args.timeout)
            return await plugin.publish_avatar_metadata(info, timeout=self.args.timeout)

        await self.stanza_op(both(), lambda _result: emit("avatar_published", id=info["id"]))

    async def cmd_avatar_get(self, cmd):
        plugin = self.avatar_plugin()

        def report(result):
            items = list(result["pubsub"]["items"])
            if not items:
                emit("avatar", **{"id": "", "from": str(result["from"]), "text": ""})
                return
            data = items[0]["avatar_data"]["value"]
            emit("avatar", **{"id": items[0]["id"], "from": str(result["from"]), "text": base64.b64encode(data).decode()})

        self.track(self.stanza_op(plugin.retrieve_avatar(cmd["jid"], cmd["id"], timeout=self.args.timeout), report))
