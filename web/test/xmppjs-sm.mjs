#!/usr/bin/env node
// Drives @xmpp/client (xmpp.js) as a real XMPP client with XEP-0198 stream
// management, step by step: a Go test (testenv.StartNodeCmd) sends commands
// as JSON lines on stdin and reads events as JSON lines on stdout.
//
//   node web/test/xmppjs-sm.mjs --service xmpp://127.0.0.1:PORT|ws://HOST:PORT/PATH
//       --domain DOMAIN --username USER --password PW [--resource R]
//       [--cafile PEM] [--verbose]
//
// xmpp:// is a TCP connection upgraded with STARTTLS (RFC 6120 §5), which
// must verify against --cafile (the test server's self-signed certificate,
// trusted for this process only); ws:// is RFC 7395 on loopback, which
// xmpp.js counts as secure. @xmpp/client enables stream management by itself
// when the server offers it, asking for resumption (XEP-0198 §3, §5).
//
// Commands, one JSON object per line ("cmd" names it); each is answered by
// the event named after the arrow, or by {"event":"command_error"}:
//
//   {"cmd":"send","to","body","id","type"}  a message (type default chat) -> sent
//   {"cmd":"presence"}                      available presence             -> sent
//   {"cmd":"ping","to","id"}   XEP-0199 ping (to default: the server) -> iq_result | iq_error
//   {"cmd":"hold"}      stop handling received data: what arrives from now
//                       on is kept aside, unparsed, so its stanzas are neither
//                       counted nor acknowledged (the client "hangs")  -> holding
//   {"cmd":"wait_held","text"}   wait until the held data contains text (say,
//                       a message id: the server has written that stanza and
//                       it is unacknowledged)                          -> held
//   {"cmd":"cut"}       destroy the TCP socket under TLS or WebSocket: no
//                       </stream:stream>, no WebSocket close frame, no TLS
//                       close_notify; held data is dropped             -> cut
//   {"cmd":"resume"}    reconnect; xmpp.js resumes the stream (it sends
//                       <resume/> since stream management was enabled)
//                                  -> resumed | resume_failed, then online (a new session)
//   {"cmd":"quit"}      close the stream politely and exit 0
//
// Events:
//
//   {"event":"online","jid","resumed":false}   a session was bound (the first,
//                                   or a new one after a failed resumption)
//   {"event":"sm_enabled","id","resume":bool,"max"}   <enabled/> (XEP-0198 §3)
//   {"event":"sm_failed","condition","text"}    <failed/> to <enable/>
//   {"event":"resumed","id","h"}   <resumed/> (§5): id is the previd, h the
//                                   server's count; the client's queue was resent
//   {"event":"resume_failed","condition","text"}   <failed/> to <resume/>;
//                                   xmpp.js goes on to bind a new session
//   {"event":"holding"}  {"event":"held","bytes"}  {"event":"cut","bytes","h"}
//                                   bytes: the data held; h: the client's count
//   {"event":"message","id","from","to","type","body","delay","delay_from"}
//                                   every message stanza handled, as received
//   {"event":"presence","id","from","type"}   every presence stanza handled
//   {"event":"iq_result","id"}  {"event":"iq_error","id","condition"}
//   {"event":"disconnected","clean"}   the connection ended and the test did
//                                   not cut it
//   {"event":"client_error","message"}   an error xmpp.js reported
//   {"event":"command_error","text"}
//
// The script exits 0 after quit or when stdin ends; 2 on bad usage.
// xmpp.js's traffic goes to stderr with --verbose.
//
// Two things about @xmpp/stream-management 0.14 that a test must respect, or
// it sees duplicates that are the client's doing, not the server's:
// - it resets its count of handled stanzas when it has read <enabled/>, a
//   tick after the parser handed on what followed it in the same read, so a
//   stanza right behind <enabled/> is counted and then forgotten: send
//   nothing that makes the server write to the client before sm_enabled;
// - it does not count an IQ result that @xmpp/iq's caller consumed (its
//   middleware stops there), so the h it reports falls behind: "ping" below
//   therefore matches its result itself instead of going through the caller.

import fs from 'node:fs';
import readline from 'node:readline';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

import { client, xml } from '@xmpp/client';
import { WebSocket } from 'ws';

const NS_SM = 'urn:xmpp:sm:3';
const NS_DELAY = 'urn:xmpp:delay';
const NS_PING = 'urn:xmpp:ping';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function usage(message) {
    process.stderr.write(
        `xmppjs-sm.mjs: ${message}\n` +
            'usage: xmppjs-sm.mjs --service xmpp://HOST:PORT|ws://HOST:PORT/PATH --domain D\n' +
            '       --username U --password PW [--resource R] [--cafile PEM] [--verbose]\n',
    );
    process.exit(2);
}

let opts;
try {
    ({ values: opts } = parseArgs({
        options: {
            service: { type: 'string' },
            domain: { type: 'string' },
            username: { type: 'string' },
            password: { type: 'string' },
            resource: { type: 'string' },
            cafile: { type: 'string' },
            verbose: { type: 'boolean', default: false },
        },
        strict: true,
        allowPositionals: false,
    }));
} catch (e) {
    usage(e.message);
}
for (const name of ['service', 'domain', 'username', 'password']) {
    if (opts[name] === undefined) usage(`--${name} is required`);
}
let transport;
try {
    transport = new URL(opts.service).protocol;
} catch {
    usage(`--service is not a URL: ${opts.service}`);
}
if (!['xmpp:', 'ws:'].includes(transport)) usage('--service must be an xmpp:// or ws:// URL');

// Trust --cafile for this process's TLS connections, as well as the usual
// roots: @xmpp/starttls calls tls.connect({socket, host: domain}), which
// then verifies the certificate and the domain against these.
if (opts.cafile) {
    const ca = [...tls.rootCertificates, fs.readFileSync(opts.cafile, 'utf8')];
    const connect = tls.connect;
    tls.connect = (options, ...rest) => connect({ ca, ...options }, ...rest);
}
// @xmpp/websocket uses the global WebSocket, which Node 20 lacks; ws is the
// one Node clients use, and it lets the test reach the TCP socket below.
globalThis.WebSocket = WebSocket;

const xmpp = client({
    service: opts.service,
    domain: opts.domain,
    username: opts.username,
    password: opts.password,
    resource: opts.resource,
});
// The test decides when to reconnect ("resume"), not a timer.
xmpp.reconnect.stop();
const sm = xmpp.streamManagement;

if (opts.verbose) {
    xmpp.on('element', (el) => process.stderr.write(`IN  ${el}\n`));
    xmpp.on('send', (el) => process.stderr.write(`OUT ${el}\n`));
    xmpp.on('status', (s) => process.stderr.write(`status ${s}\n`));
}

// ---------------------------------------------------------------------------
// The TCP socket under TLS or WebSocket, for "cut".

let tcpSocket = null;
xmpp.on('connect', () => {
    const s = xmpp.socket;
    // TCP: the connection's own net.Socket (STARTTLS wraps it later; it stays
    // the one with the file descriptor). WebSocket: ws keeps it as _socket
    // once open, which it is at 'connect'.
    tcpSocket = s?.socket instanceof WebSocket ? s.socket._socket : s;
});

// ---------------------------------------------------------------------------
// Holding received data: the connection hands every chunk it reads to
// _onData, which feeds the parser; the listener that calls it is bound when
// the first socket is attached, so replacing it here, before start(), puts
// this in front of the parser for every connection.

let holding = false;
let held = '';
let heldWaiter = null; // {text, resolve}
const onData = xmpp._onData;
xmpp._onData = function (data) {
    if (holding) {
        held += data.toString('utf8');
        if (heldWaiter && held.includes(heldWaiter.text)) {
            heldWaiter.resolve();
            heldWaiter = null;
        }
        return;
    }
    return onData.call(this, data);
};

// ---------------------------------------------------------------------------
// Events.

let cutting = false; // the test cut the connection: no "disconnected"
let resuming = false; // <resume/> sent, no answer yet

let quitting = false;

xmpp.on('error', (err) => emit({ event: 'client_error', message: String(err?.message ?? err) }));

xmpp.on('online', (address) => {
    resuming = false;
    emit({ event: 'online', jid: address.toString(), resumed: false });
});

sm.on('resumed', () => {
    resuming = false;
    emit({ event: 'resumed', id: sm.id, h: sm.outbound });
});

xmpp.on('disconnect', ({ clean } = {}) => {
    if (cutting || quitting) return;
    emit({ event: 'disconnected', clean: Boolean(clean) });
});

function errorCondition(el) {
    for (const c of el.children) {
        if (typeof c === 'string') continue;
        if (c.attrs.xmlns === NS_STANZAS && c.name !== 'text') return c.name;
    }
    return '';
}

xmpp.on('nonza', (el) => {
    if (el.is('enabled', NS_SM)) {
        emit({ event: 'sm_enabled', id: el.attrs.id ?? '', resume: ['true', '1'].includes(el.attrs.resume), max: el.attrs.max ?? '' });
    } else if (el.is('failed', NS_SM)) {
        const ev = { condition: errorCondition(el), text: el.getChildText('text', NS_STANZAS) ?? '' };
        if (resuming) {
            resuming = false;
            emit({ event: 'resume_failed', ...ev });
        } else {
            emit({ event: 'sm_failed', ...ev });
        }
    }
});

const pings = new Map(); // id -> resolve(result or error element)

xmpp.on('stanza', (el) => {
    if (el.is('iq') && ['result', 'error'].includes(el.attrs.type) && pings.has(el.attrs.id)) {
        pings.get(el.attrs.id)(el);
        pings.delete(el.attrs.id);
        return;
    }
    if (el.is('presence')) {
        emit({ event: 'presence', id: el.attrs.id ?? '', from: el.attrs.from ?? '', type: el.attrs.type ?? '' });
        return;
    }
    if (!el.is('message')) return;
    const delay = el.getChild('delay', NS_DELAY);
    emit({
        event: 'message',
        id: el.attrs.id ?? '',
        from: el.attrs.from ?? '',
        to: el.attrs.to ?? '',
        type: el.attrs.type ?? '',
        body: el.getChildText('body') ?? '',
        delay: delay?.attrs.stamp ?? '',
        delay_from: delay?.attrs.from ?? '',
    });
});

// ---------------------------------------------------------------------------
// Commands.

const commands = {
    async send(cmd) {
        const attrs = { to: cmd.to, type: cmd.type || 'chat' };
        if (cmd.id) attrs.id = cmd.id;
        await xmpp.send(xml('message', attrs, xml('body', {}, cmd.body ?? '')));
        emit({ event: 'sent', id: cmd.id ?? '' });
    },
    async presence() {
        await xmpp.send(xml('presence'));
        emit({ event: 'sent', id: '' });
    },
    async ping(cmd) {
        const id = cmd.id || `ping-${Date.now()}`;
        const reply = new Promise((resolve) => pings.set(id, resolve));
        await xmpp.send(xml('iq', { type: 'get', id, to: cmd.to || opts.domain }, xml('ping', { xmlns: NS_PING })));
        // Not awaited: the reply may come after later commands.
        reply.then((el) => {
            if (el.attrs.type === 'result') {
                emit({ event: 'iq_result', id });
            } else {
                const err = el.getChild('error');
                emit({ event: 'iq_error', id, condition: err ? errorCondition(err) : '' });
            }
        });
    },
    async hold() {
        holding = true;
        emit({ event: 'holding' });
    },
    async wait_held(cmd) {
        if (!holding) throw new Error('wait_held needs hold first');
        if (!held.includes(cmd.text)) {
            await new Promise((resolve) => {
                heldWaiter = { text: cmd.text, resolve };
            });
        }
        emit({ event: 'held', bytes: Buffer.byteLength(held) });
    },
    async cut() {
        if (!tcpSocket) throw new Error('not connected');
        cutting = true;
        const bytes = Buffer.byteLength(held);
        // destroy() closes the descriptor: the peer sees the TCP connection
        // end (FIN) with nothing before it, as if the process had died.
        tcpSocket.destroy();
        tcpSocket = null;
        holding = false;
        held = '';
        // xmpp.js notices through the socket's close event.
        if (xmpp.status !== 'disconnect') {
            await new Promise((resolve) => xmpp.once('disconnect', resolve));
        }
        cutting = false;
        emit({ event: 'cut', bytes, h: sm.inbound });
    },
    async resume() {
        if (xmpp.status !== 'disconnect') throw new Error(`resume while ${xmpp.status}`);
        resuming = Boolean(sm.id);
        // What xmpp.js's own reconnect does: a new connection and stream on
        // which stream features resume (sm.id set) or bind a new session.
        await xmpp.reconnect.reconnect();
    },
    async quit() {
        quitting = true;
        try {
            await xmpp.stop();
        } catch {}
        process.exit(0);
    },
};

async function serve() {
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of rl) {
        if (!line.trim()) continue;
        let cmd;
        try {
            cmd = JSON.parse(line);
        } catch (e) {
            emit({ event: 'command_error', text: `bad command ${line}: ${e.message}` });
            continue;
        }
        const handler = Object.hasOwn(commands, cmd.cmd) ? commands[cmd.cmd] : null;
        if (!handler) {
            emit({ event: 'command_error', text: `unknown command ${cmd.cmd}` });
            continue;
        }
        // One at a time, in order, as the test wrote them.
        try {
            await handler(cmd);
        } catch (e) {
            emit({ event: 'command_error', text: `${cmd.cmd}: ${e?.message ?? e}` });
        }
    }
    // stdin ended: the test is gone.
    quitting = true;
    try {
        await Promise.race([xmpp.stop(), new Promise((r) => setTimeout(r, 2000))]);
    } catch {}
    process.exit(0);
}

try {
    await xmpp.start();
} catch (e) {
    emit({ event: 'error', stage: 'connect', message: String(e?.message ?? e) });
    process.exit(1);
}
await serve();
