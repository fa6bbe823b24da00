#!/usr/bin/python3
"""A multi-user chat (XEP-0045) scenario with slixmpp's xep_0045 plugin.

Written for Debian's python3-slixmpp 1.8.x; run it with /usr/bin/python3.
Two accounts, an owner and a guest, sign in (same password) and walk
through a room's life with the plugin's own calls:

  configured   the owner joins (creating the room) and submits the
               configuration form the service sent, with a new name
  fanout       the guest joins; the owner's groupchat message reaches it
  history      the guest leaves and rejoins; the message is in its history
  conflict     the guest asks for the owner's nick: refused
  nickchange   the guest becomes "newguest" (303) and then "guest" again
  kicked       the owner kicks the guest: it gets status code 307
  banned       the owner bans the guest, who cannot come back
  password     a password-protected room refuses the guest without it
  membersonly  a members-only room refuses the guest
  destroyed    the owner destroys the room

With --phase persist-create the owner instead makes a persistent room with
a name and a subject (step "persisted"); with --phase persist-check, after
the server restarted, it joins the room again and finds both (step
"restored"), and finds itself still the owner (the configuration form).

Each step prints {"event":"step","name":...,"ok":true|false,...} on
stdout; then {"event":"done"}. Exit status 0 when every step ran (whatever
its result), 2 on a timeout.
"""

import argparse
import asyncio
import copy
import sys

from slixmpp.exceptions import IqError, PresenceError

sys.dont_write_bytecode = True
from slixmpp_common import EXIT_OK, EXIT_TIMEOUT, BaseClient, add_common_args, emit, run_main


def client(args, jid, done):
    a = copy.copy(args)
    a.jid = jid
    c = BaseClient(jid, a, done)
    c.register_plugin("xep_0030")
    c.register_plugin("xep_0004")
    c.register_plugin("xep_0045")
    c.register_plugin("xep_0203")
    return c


async def session(c):
    started = asyncio.get_running_loop().create_future()
    c.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    c.connect_to_target()
    await asyncio.wait_for(started, 15)


def condition(err):
    try:
        return err.condition
    except AttributeError:
        return str(err)


async def refused(muc, room, nick, **kw):
    """Joins and expects an error presence; returns its condition."""
    try:
        await muc.join_muc_wait(room, nick, timeout=10, **kw)
    except PresenceError as e:
        return e.condition
    return ""


async def configure(muc, room, fields):
    form = await muc.get_room_config(room)
    for var, value in fields.items():
        form.field[var]["value"] = value
    await muc.set_room_config(room, form)


async def scenario(args, owner, guest):
    om, gm = owner.plugin["xep_0045"], guest.plugin["xep_0045"]
    room = args.room
    await om.join_muc_wait(room, "owner", timeout=10)
    await configure(om, room, {"muc#roomconfig_roomname": "Interop"})
    form = await om.get_room_config(room)
    emit("step", name="configured", ok=form.field["muc#roomconfig_roomname"]["value"] == "Interop")

    await gm.join_muc_wait(room, "guest", timeout=10)
    got = asyncio.get_running_loop().create_future()

    def on_message(msg):
        if msg["body"] == "hello everyone" and not got.done():
            got.set_result(msg)

    guest.add_event_handler("groupchat_message", on_message)
    owner.send_message(mto=room, mbody="hello everyone", mtype="groupchat")
    msg = await asyncio.wait_for(got, 10)
    emit("step", name="fanout", ok=str(msg["from"]) == room + "/owner", sender=str(msg["from"]))

    left = asyncio.get_running_loop().create_future()
    guest.add_event_handler("muc::%s::got_offline" % room, lambda p: left.done() or left.set_result(p))
    gm.leave_muc(room, "guest")
    await asyncio.sleep(0.2)
    _, _, _, history = await gm.join_muc_wait(room, "guest", maxstanzas=5, timeout=10)
    bodies = [h["body"] for h in history]
    emit("step", name="history", ok="hello everyone" in bodies, bodies=bodies)

    cond = await refused(gm, room, "owner")
    emit("step", name="conflict", ok=cond == "conflict", condition=cond)
    gm.our_nicks[room] = "guest"

    async def change(old, new):
        gone = asyncio.get_running_loop().create_future()
        back = asyncio.get_running_loop().create_future()

        def on_presence(p):
            if p["from"].resource == old and p["type"] == "unavailable" and not gone.done():
                gone.set_result(p)
            elif p["from"].resource == new and p["type"] != "unavailable" and 110 in p["muc"]["status_codes"] and not back.done():
                back.set_result(p)

        guest.add_event_handler("muc::%s::presence" % room, on_presence)
        guest.send_presence(pto="%s/%s" % (room, new))
        p = await asyncio.wait_for(gone, 10)
        await asyncio.wait_for(back, 10)
        guest.del_event_handler("muc::%s::presence" % room, on_presence)
        gm.our_nicks[room] = new
        return 303 in p["muc"]["status_codes"]

    first = await change("guest", "newguest")
    second = await change("newguest", "guest")
    ok = first and second
    emit("step", name="nickchange", ok=ok)

    kicked = asyncio.get_running_loop().create_future()

    def on_presence(p):
        if p["type"] == "unavailable" and p["from"].resource == "guest" and not kicked.done():
            kicked.set_result(p)

    guest.add_event_handler("muc::%s::presence" % room, on_presence)
    await om.set_role(room, "guest", "none", reason="testing")
    p = await asyncio.wait_for(kicked, 10)
    codes = sorted(p["muc"]["status_codes"])
    emit("step", name="kicked", ok=307 in codes, codes=codes)

    await om.set_affiliation(room, "outcast", jid=guest.boundjid.bare, reason="testing")
    cond = await refused(gm, room, "guest")
    emit("step", name="banned", ok=cond == "forbidden", condition=cond)

    locked = room.replace("@", "-pw@", 1)
    await om.join_muc_wait(locked, "owner", timeout=10)
    await configure(om, locked, {"muc#roomconfig_passwordprotectedroom": True, "muc#roomconfig_roomsecret": "s3cret"})
    cond = await refused(gm, locked, "guest")
    emit("step", name="password", ok=cond == "not-authorized", condition=cond)

    members = room.replace("@", "-members@", 1)
    await om.join_muc_wait(members, "owner", timeout=10)
    await configure(om, members, {"muc#roomconfig_membersonly": True})
    cond = await refused(gm, members, "guest")
    emit("step", name="membersonly", ok=cond == "registration-required", condition=cond)

    try:
        await om.destroy(room, reason="done")
        await om.get_room_config(room)
        emit("step", name="destroyed", ok=False, text="the room still answers")
    except IqError as e:
        emit("step", name="destroyed", ok=e.condition == "item-not-found", condition=e.condition)


async def persist_create(args, owner):
    om = owner.plugin["xep_0045"]
    await om.join_muc_wait(args.room, "owner", timeout=10)
    await configure(om, args.room, {"muc#roomconfig_persistentroom": True, "muc#roomconfig_roomname": "Lasting"})
    subject = asyncio.get_running_loop().create_future()
    owner.add_event_handler("groupchat_subject", lambda m: subject.done() or subject.set_result(m))
    om.set_subject(args.room, "Kept across restarts")
    await asyncio.wait_for(subject, 10)
    emit("step", name="persisted", ok=True)


async def persist_check(args, owner):
    om = owner.plugin["xep_0045"]
    _, subject, _, _ = await om.join_muc_wait(args.room, "owner", timeout=10)
    form = await om.get_room_config(args.room)
    name = form.field["muc#roomconfig_roomname"]["value"]
    persistent = form.field["muc#roomconfig_persistentroom"]["value"]
    emit("step", name="restored", ok=subject["subject"] == "Kept across restarts" and name == "Lasting" and bool(persistent),
         subject=subject["subject"], title=name, persistent=bool(persistent))


async def run(args):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    owner = client(args, args.jid, done)
    guest = client(args, args.guest, done)
    try:
        await asyncio.wait_for(asyncio.gather(session(owner), session(guest)), args.timeout)
        steps = {"all": lambda: scenario(args, owner, guest),
                 "persist-create": lambda: persist_create(args, owner),
                 "persist-check": lambda: persist_check(args, owner)}[args.phase]
        await asyncio.wait_for(steps(), args.timeout)
    except asyncio.TimeoutError:
        emit("timeout")
        return EXIT_TIMEOUT
    emit("done")
    for c in (owner, guest):
        c.closing = True
        await c.disconnect_quietly(wait=True, limit=2)
    return EXIT_OK


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, "the owner's bare JID", "SASL mechanism (default: slixmpp's choice)")
    p.add_argument("--guest", required=True, help="the guest's bare JID")
    p.add_argument("--room", required=True, help="the room's JID")
    p.add_argument("--phase", choices=("all", "persist-create", "persist-check"), default="all")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_main(parse_args, run))
