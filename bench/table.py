#!/usr/bin/python3
"""Prints the results of bench/run.sh (results.jsonl: one xmppbench JSON
object a line, each with its "server") as a Markdown table: every metric per
server, and ours divided by the better of the others.

    bench/table.py [-ours xmppd] [-scram-iterations 4096] results.jsonl

"Better" is the higher value for a throughput and the lower one for latency
and memory; each row says which (higher or lower is better), and so how to
read its ratio. Standard library only.
"""

import argparse
import json
import sys

# The order of the columns; servers not listed here follow in the order met.
KNOWN_SERVERS = ["prosody", "ejabberd", "xmppd"]

HIGHER, LOWER = "higher", "lower"


class Row:
    """One metric: a label, which direction is better, and a value per server."""

    def __init__(self, label, better, digits=1, ratio=True):
        self.label = label
        self.better = better
        self.digits = digits
        self.ratio = ratio
        self.values = {}  # server -> number, or a string saying why there is none


def load(path):
    results = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                results.append(json.loads(line))
            except json.JSONDecodeError as e:
                print("%s:%d: not JSON (%s); skipped" % (path, n, e), file=sys.stderr)
    return results


def servers_of(results):
    seen = []
    for r in results:
        s = r.get("server") or "?"
        if s not in seen:
            seen.append(s)
    return [s for s in KNOWN_SERVERS if s in seen] + [s for s in seen if s not in KNOWN_SERVERS]


def get(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


MECH_ORDER = ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"]


def build_rows(results):
    """Turns the results into rows: login per mechanism, idle, chat (its
    steps by rate), muc, team (by size), then the rest. A row's key is (scenario rank, number,
    name, position) so that sorting the keys orders the rows."""
    rows = {}  # key -> Row
    notes = []

    def put(key, label, better, server, value, **kw):
        row = rows.setdefault(key, Row(label, better, **kw))
        row.values[server] = value

    for r in results:
        server = r.get("server") or "?"
        scenario = r.get("scenario", "?")
        error = r.get("error")
        if scenario == "login":
            mech = r.get("mech", "?")
            base = "login %s" % mech
            k = (0, MECH_ORDER.index(mech) if mech in MECH_ORDER else len(MECH_ORDER), mech)
            clients = r.get("clients")
            what = "%s: logins/s%s" % (base, " (%s clients)" % clients if clients else "")
            if error or not r.get("ok"):
                # No login went through: a rate of 0 would read as measured.
                put(k + (0,), what, HIGHER, server, "n/a")
                failed(notes, server, base, r)
                continue
            put(k + (0,), what, HIGHER, server, r.get("logins_per_s"))
            put(k + (1,), "%s: latency p50, ms" % base, LOWER, server, get(r, "latency_ms", "p50"))
            put(k + (2,), "%s: latency p99, ms" % base, LOWER, server, get(r, "latency_ms", "p99"))
            put(k + (3,), "%s: failed logins" % base, LOWER, server, r.get("failed"), digits=0, ratio=False)
            if r.get("scram_iterations"):
                put(k + (4,), "%s: iteration count the server announced" % base, LOWER, server,
                    r.get("scram_iterations"), digits=0, ratio=False)
            errors_note(notes, server, base, r)
        elif scenario == "idle":
            sessions = r.get("sessions")
            # xmppbench -curves: classic (X25519, P-256) is the plain "idle"
            # row; any other offer gets rows of its own.
            curves = r.get("curves") or "classic"
            sm = bool(r.get("stream_management"))
            base = "idle" if curves == "classic" else "idle, client offers %s curves" % curves
            if sm:
                base += ", stream management on"
            k = (1, 0 if curves == "classic" else 1, curves, sm)
            what = "%s: KiB per session%s" % (base, " (%s sessions)" % sessions if sessions else "")
            if error or not sessions:
                # No session was held: nothing was measured.
                put(k + (0,), what, LOWER, server, "n/a")
                failed(notes, server, base, r)
                continue
            put(k + (0,), what, LOWER, server, r.get("kib_per_session"))
            after = r.get("rss_after_kib")
            put(k + (1,), "%s: server RSS with the sessions, MiB" % base, LOWER, server,
                after / 1024 if isinstance(after, (int, float)) else None)
            put(k + (2,), "%s: failed logins" % base, LOWER, server, r.get("failed"), digits=0, ratio=False)
            errors_note(notes, server, base, r)
        elif scenario in ("chat", "muc"):
            rank = 2 if scenario == "chat" else 3
            clients = r.get("clients")
            if scenario == "chat":
                unit = "msgs/s delivered"
                who = ", %s clients" % clients if clients else ""
            else:
                unit = "deliveries/s"
                who = ", one room, %s occupants, %s senders" % (clients, r.get("senders"))
            what = "%s: best %s (p99 < 100 ms, no loss)%s" % (scenario, unit, who)
            if error or not clients:
                put((rank, 0, "", 0), what, HIGHER, server, "n/a")
                failed(notes, server, scenario, r)
                continue
            put((rank, 0, "", 0), what, HIGHER, server, r.get("best_delivered_per_s"))
            for step in r.get("steps") or []:
                rate = step.get("offered_per_s")
                k = (rank, rate if isinstance(rate, int) else 0, "")
                at = "%s at %s/s offered" % (scenario, rate) if scenario == "chat" else \
                    "muc at %s msgs/s sent to the room" % rate
                put(k + (0,), "%s: delivered/s" % at, HIGHER, server, step.get("delivered_per_s"))
                put(k + (1,), "%s: latency p99, ms" % at, LOWER, server, get(step, "latency_ms", "p99"))
                loss = step.get("loss")
                put(k + (2,), "%s: loss, %%" % at, LOWER, server,
                    loss * 100 if isinstance(loss, (int, float)) else None, digits=2, ratio=False)
            dropped = r.get("dropped_clients")
            if dropped:
                notes.append("%s, %s: %s clients were disconnected" % (server, scenario, dropped))
        elif scenario == "team":
            team_rows(put, notes, server, r)
        else:
            label = "%s" % scenario
            put((5, 0, scenario, 0), label, HIGHER, server, "n/a" if error else "ok", ratio=False)
            if error:
                notes.append("%s, %s: %s" % (server, scenario, error))
    return [rows[k] for k in sorted(rows)], notes


def team_rows(put, notes, server, r):
    """The team scenario's rows, one group per team size and pace. Until
    every member has seen every other's presence nothing past the logins
    was measured: those rows say n/a."""
    clients = r.get("clients") or 0
    rate = r.get("rate_per_s") or 0
    if rate:
        pace = "%s logins/s" % rate
    elif r.get("concurrency"):
        pace = "%s logins at a time" % r["concurrency"]
    else:
        pace = "all at once"
    base = "team of %s, %s" % (clients, pace)
    k = (4, clients, rate)
    login_ok = not r.get("error") and r.get("ok")
    put(k + (0,), "%s: logins/s" % base, HIGHER, server, r.get("logins_per_s") if login_ok else "n/a")
    settled = bool(r.get("settled"))
    ok = r.get("ok") or 0

    def measured(v):
        return v if settled else "n/a"

    put(k + (1,), "%s: seconds until everyone saw everyone online" % base, LOWER, server,
        measured(r.get("settle_seconds")), digits=2)
    if rate:
        # At a fixed rate the last login starts at (n-1)/rate s whatever the
        # server does: what it decides is how long after that the team settles.
        put(k + (1.5,), "%s: seconds from the last login's start until settled" % base, LOWER, server,
            measured(r.get("settle_after_last_login_s")), digits=2)
    put(k + (2,), "%s: server CPU, s" % base, LOWER, server, measured(r.get("server_cpu_seconds")), digits=2)
    put(k + (3,), "%s: server CPU per login, ms" % base, LOWER, server, measured(r.get("cpu_ms_per_login")))
    # The database's CPU counts too where it is a process of its own
    # (xmppd's PostgreSQL); Mnesia and Prosody's groups file are in-process.
    db = r.get("db_cpu_seconds")
    with_db = r.get("cpu_ms_per_login")
    if isinstance(db, (int, float)) and ok and isinstance(with_db, (int, float)):
        with_db += 1000 * db / ok
    put(k + (4,), "%s: CPU per login with the database's, ms" % base, LOWER, server, measured(with_db))
    put(k + (5,), "%s: KiB per session" % base, LOWER, server, measured(r.get("kib_per_session")))
    # Every pair needs one; more are repeats (a probe's answer and the
    # broadcast, say).
    put(k + (6,), "%s: available presences received" % base, LOWER, server,
        measured(r.get("presences_received")), digits=0)
    lo, hi = r.get("roster_items_min"), r.get("roster_items_max")
    items = "n/a" if lo is None or lo < 0 else ("%d" % lo if lo == hi else "%d–%d" % (lo, hi))
    put(k + (7,), "%s: roster items" % base, LOWER, server, items, ratio=False)
    # Near the span itself, the load tool set the pace rather than the server.
    put(k + (9,), "%s: load tool CPU, s" % base, LOWER, server, r.get("load_cpu_seconds"), digits=2, ratio=False)
    put(k + (8,), "%s: failed logins" % base, LOWER, server, r.get("failed"), digits=0, ratio=False)
    if r.get("error"):
        notes.append("%s, %s: %s" % (server, base, r["error"]))
    elif not settled:
        notes.append("%s, %s: not settled, %s of %s pairs seen" % (
            server, base, r.get("pairs_seen"), r.get("pairs_wanted")))
    errors_note(notes, server, base, r)
    if r.get("dropped_clients"):
        notes.append("%s, %s: %s clients were disconnected" % (server, base, r["dropped_clients"]))


def failed(notes, server, what, r):
    """Notes why a scenario gave no figure: its error, or its clients'."""
    if r.get("error"):
        notes.append("%s, %s: %s" % (server, what, r["error"]))
    elif r.get("errors"):
        errors_note(notes, server, what, r)
    else:
        notes.append("%s, %s: no client got through" % (server, what))


def errors_note(notes, server, what, r):
    errors = r.get("errors")
    if errors:
        detail = ", ".join("%s × %s" % (n, e) for e, n in sorted(errors.items(), key=lambda kv: -kv[1]))
        notes.append("%s, %s: errors: %s" % (server, what, detail))


def merge_notes(notes):
    """Joins notes that differ only in the server: "a, b, what: text"."""
    merged = {}  # (what, text) -> servers, insertion-ordered
    for note in notes:
        server, _, rest = note.partition(", ")
        merged.setdefault(rest, []).append(server)
    return ["%s, %s" % (", ".join(servers), rest) for rest, servers in merged.items()]


def fmt(value, digits):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if digits == 0:
        return "%d" % round(value)
    return "{:,.{d}f}".format(value, d=digits)


def ratio(row, servers, ours):
    if not row.ratio:
        return ""
    mine = row.values.get(ours)
    theirs = [row.values.get(s) for s in servers if s != ours]
    theirs = [v for v in theirs if isinstance(v, (int, float))]
    if not isinstance(mine, (int, float)) or not theirs:
        return "n/a"
    best = max(theirs) if row.better == HIGHER else min(theirs)
    if best == 0:
        return "n/a"
    return "%.2f" % (mine / best)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="results.jsonl written by bench/run.sh")
    p.add_argument("-ours", default="xmppd", help="the server whose ratios are shown (default xmppd)")
    p.add_argument("-scram-iterations", type=int, default=4096,
                   help="the SCRAM iteration count all servers store (for the header)")
    args = p.parse_args()

    try:
        results = load(args.results)
    except OSError as e:
        sys.exit("table.py: %s" % e)
    if not results:
        sys.exit("%s: no results" % args.results)
    servers = servers_of(results)
    rows, notes = build_rows(results)
    others = [s for s in servers if s != args.ours]

    print("### XMPP servers under load: %s" % ", ".join(servers))
    print()
    print("Each server pinned to CPU 1 and the load tool to CPU 0; STARTTLS required (TLS 1.2+); "
          "passwords stored as SCRAM with **%d iterations** on every server; "
          "the ratio is %s ÷ the better of %s." % (
              args.scram_iterations, args.ours, " and ".join(others) or "the others"))
    print()
    header = ["metric", "better"] + servers + ["%s ÷ best other" % args.ours]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(servers) + 1))
    for row in rows:
        cells = [row.label, row.better if row.ratio else ""]
        cells += [fmt(row.values.get(s), row.digits) for s in servers]
        cells.append(ratio(row, servers, args.ours))
        print("| " + " | ".join(cells) + " |")
    if notes:
        print()
        for note in merge_notes(notes):
            print("- " + note)


if __name__ == "__main__":
    main()
