#!/usr/bin/env node
// Drives strophe.js as a real XMPP client over BOSH or WebSocket and reports
// what happened as one JSON object per line on stdout.
//
//   node web/test/strophe.mjs --transport bosh|websocket --url URL
//       --jid user@domain --password PW [--resource R]
//       [--peer JID] [--send TEXT] [--expect TEXT [--reply TEXT]]
//       [--room ROOM@conference.domain --nick NICK]
//       [--event NAME] [--mechanism NAME] [--timeout SECONDS] [--verbose]
//
// Scenario, in order: connect and authenticate ("connected"), fetch the
// roster ("roster"), send initial presence and wait for one IQ round trip so
// the server has processed it ("online"), send a chat message to --peer
// ("sent"), wait for a chat message whose body is --expect ("message") and
// answer its sender with --reply ("replied"), wait for an app event
// (docs/events.md) called --event and report its JSON payload ("app-event"),
// join --room as --nick
// ("joined"), send a groupchat message and wait for its reflection
// ("groupchat"), then make sure the server has read everything and
// disconnect ("done").
//
// Exit status: 0 on success; 1 on failure or timeout, after an
// {"event":"error"} line; 2 on bad usage. Everything other than the events
// (Strophe's log, with --verbose the XML on the wire) goes to stderr.
//
// strophe.js's Node build brings the DOM (@xmldom/xmldom) and WebSocket (ws);
// BOSH needs an XMLHttpRequest, which Node lacks, so this file provides one
// on top of node:http/node:https (NodeXHR below).

import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';

// Strophe logs with console.debug/info, which Node writes to stdout: keep
// stdout for the events alone.
for (const level of ['log', 'info', 'debug', 'warn']) {
    console[level] = (...args) => console.error(...args);
}

const { Strophe, $iq, $msg, $pres } = await import('strophe.js');

const NS_ROSTER = 'jabber:iq:roster';
const NS_MUC = 'http://jabber.org/protocol/muc';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
const NS_PING = 'urn:xmpp:ping';
const NS_DELAY = 'urn:xmpp:delay';
const NS_EVENT = 'urn:xmppd:event:0';

// ---------------------------------------------------------------------------
// Output

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

let stage = 'start';
let exiting = false;
// The last HTTP or network error of the BOSH transport, for the error line
// (Strophe itself only reports "disconnected" or keeps retrying).
let lastTransportError = null;

function fail(message, extra = {}) {
    if (exiting) return;
    exiting = true;
    if (lastTransportError && stage === 'connect') extra = { transport_error: lastTransportError, ...extra };
    emit({ event: 'error', stage, message, ...extra });
    process.exit(1);
}

function usage(message) {
    process.stderr.write(
        `strophe.mjs: ${message}\n` +
            'usage: strophe.mjs --transport bosh|websocket --url URL --jid user@domain --password PW\n' +
            '       [--resource R] [--peer JID] [--send TEXT] [--expect TEXT [--reply TEXT]]\n' +
            '       [--room ROOM@conference.domain --nick NICK] [--event NAME] [--mechanism NAME]\n' +
            '       [--timeout SECONDS] [--verbose]\n',
    );
    process.exit(2);
}

// ---------------------------------------------------------------------------
// Arguments

let opts;
try {
    ({ values: opts } = parseArgs({
        options: {
            transport: { type: 'string' },
            url: { type: 'string' },
            jid: { type: 'string' },
            password: { type: 'string' },
            resource: { type: 'string' },
            peer: { type: 'string' },
            send: { type: 'string' },
            expect: { type: 'string' },
            reply: { type: 'string' },
            event: { type: 'string' },
            room: { type: 'string' },
            nick: { type: 'string' },
            mechanism: { type: 'string' },
            timeout: { type: 'string', default: '30' },
            verbose: { type: 'boolean', default: false },
            help: { type: 'boolean', short: 'h', default: false },
        },
        strict: true,
        allowPositionals: false,
    }));
} catch (e) {
    usage(e.message);
}
if (opts.help) usage('help');
for (const name of ['transport', 'url', 'jid', 'password']) {
    if (opts[name] === undefined) usage(`--${name} is required`);
}
if (!['bosh', 'websocket'].includes(opts.transport)) usage('--transport must be bosh or websocket');
let serviceURL;
try {
    serviceURL = new URL(opts.url);
} catch {
    usage(`--url is not a URL: ${opts.url}`);
}
const wantScheme = opts.transport === 'bosh' ? ['http:', 'https:'] : ['ws:', 'wss:'];
if (!wantScheme.includes(serviceURL.protocol)) {
    usage(`--transport ${opts.transport} needs a ${wantScheme.join(' or ')} URL, not ${opts.url}`);
}
if (!/^[^@/]+@[^@/]+$/.test(opts.jid)) usage('--jid must be a bare JID, user@domain');
if (opts.send !== undefined && opts.peer === undefined) usage('--send needs --peer');
if (opts.reply !== undefined && opts.expect === undefined) usage('--reply needs --expect');
if ((opts.room === undefined) !== (opts.nick === undefined)) usage('--room and --nick go together');
const timeoutSeconds = Number(opts.timeout);
if (!(timeoutSeconds > 0)) usage('--timeout must be a positive number of seconds');

setTimeout(() => fail(`timed out after ${timeoutSeconds}s`), timeoutSeconds * 1000).unref();

// ---------------------------------------------------------------------------
// TLS: accept self-signed certificates (test servers only).

const insecureAgent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
const plainAgent = new http.Agent({ keepAlive: true });
{
    // Strophe does `new WebSocket(url, 'xmpp')` with the global that its Node
    // shim set to `ws`; pass ws the option it has no other way to get.
    const WS = globalThis.WebSocket;
    globalThis.WebSocket = class extends WS {
        constructor(url, protocols, options = {}) {
            super(url, protocols, { rejectUnauthorized: false, ...options });
        }
    };
}

// ---------------------------------------------------------------------------
// A minimal XMLHttpRequest for Strophe's BOSH transport: asynchronous POSTs
// with readystatechange events, status, responseText and responseXML (Strophe
// reads the body from responseXML only), abort() and response headers.

class NodeXHR {
    static UNSENT = 0;
    static OPENED = 1;
    static HEADERS_RECEIVED = 2;
    static LOADING = 3;
    static DONE = 4;

    constructor() {
        this.readyState = 0;
        this.status = 0;
        this.statusText = '';
        this.responseText = '';
        this.withCredentials = false;
        this.timeout = 0;
        this.onreadystatechange = null;
        this.onload = null;
        this.onerror = null;
        this._headers = {};
        this._responseHeaders = {};
        this._req = null;
        this._xml = undefined;
    }

    open(method, url, async = true) {
        if (async === false) throw new Error('NodeXHR: synchronous requests are not supported');
        this._method = method;
        this._url = new URL(url);
        this._headers = {};
        this._responseHeaders = {};
        this.status = 0;
        this.statusText = '';
        this.responseText = '';
        this._xml = undefined;
        this._setState(1);
    }

    overrideMimeType() {}

    setRequestHeader(name, value) {
        this._headers[name] = value;
    }

    getResponseHeader(name) {
        const v = this._responseHeaders[name.toLowerCase()];
        if (v === undefined) return null;
        return Array.isArray(v) ? v.join(', ') : String(v);
    }

    getAllResponseHeaders() {
        return Object.entries(this._responseHeaders)
            .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}\r\n`)
            .join('');
    }

    get responseXML() {
        if (this.readyState !== 4 || !this.responseText) return null;
        if (this._xml === undefined) {
            this._xml = new globalThis.DOMParser().parseFromString(this.responseText, 'text/xml');
        }
        return this._xml;
    }

    send(body = null) {
        if (this.readyState !== 1) throw new Error('NodeXHR: send() before open()');
        const secure = this._url.protocol === 'https:';
        const data = body == null ? null : Buffer.from(String(body), 'utf8');
        const headers = { ...this._headers };
        if (data) headers['Content-Length'] = data.length;
        const req = (secure ? https : http).request(this._url, {
            method: this._method,
            headers,
            agent: secure ? insecureAgent : plainAgent,
        });
        this._req = req;
        req.on('response', (res) => {
            if (this._req !== req) return;
            this.status = res.statusCode;
            this.statusText = res.statusMessage;
            this._responseHeaders = res.headers;
            this._setState(2);
            const chunks = [];
            res.on('data', (chunk) => {
                if (this._req !== req) return;
                chunks.push(chunk);
                if (this.readyState !== 3) this._setState(3);
            });
            res.on('end', () => {
                if (this._req !== req) return;
                this._req = null;
                this.responseText = Buffer.concat(chunks).toString('utf8');
                if (this.status >= 400) lastTransportError = `HTTP ${this.status} ${this.statusText} from ${this._url}`;
                this._setState(4);
                this.onload?.();
            });
            res.on('error', (e) => this._networkError(req, e));
        });
        req.on('error', (e) => this._networkError(req, e));
        if (this.timeout > 0) req.setTimeout(this.timeout, () => req.destroy(new Error('timeout')));
        req.end(data ?? undefined);
    }

    abort() {
        const req = this._req;
        this._req = null;
        if (req) {
            req.destroy();
            // As in browsers: an in-flight request goes to DONE with status 0
            // (one readystatechange), then silently back to UNSENT.
            this.status = 0;
            this.responseText = '';
            this._setState(4);
        }
        this.readyState = 0;
    }

    _networkError(req, err) {
        if (this._req !== req) return;
        this._req = null;
        lastTransportError = `${this._method} ${this._url}: ${err.message || err.code}`;
        this.status = 0;
        this.responseText = '';
        this._setState(4);
        this.onerror?.(err);
    }

    _setState(state) {
        this.readyState = state;
        this.onreadystatechange?.();
    }
}

globalThis.XMLHttpRequest ??= NodeXHR;

// ---------------------------------------------------------------------------
// XML helpers (the elements are @xmldom/xmldom nodes)

function children(el, name, ns) {
    const out = [];
    for (let n = el?.firstChild; n; n = n.nextSibling) {
        if (n.nodeType !== 1) continue;
        if (name && (n.localName ?? n.nodeName) !== name) continue;
        if (ns && n.namespaceURI !== ns) continue;
        out.push(n);
    }
    return out;
}

function child(el, name, ns) {
    return children(el, name, ns)[0] ?? null;
}

function bodyOf(stanza) {
    const body = child(stanza, 'body');
    return body ? body.textContent : null;
}

function describeError(stanza) {
    if (!stanza) return 'no reply (timeout)';
    const err = child(stanza, 'error');
    if (!err) return Strophe.serialize(stanza);
    const cond = children(err).map((e) => e.localName ?? e.nodeName).filter((n) => n !== 'text');
    const text = child(err, 'text');
    return `${err.getAttribute('type') || ''} ${cond.join(' ')}${text ? ': ' + text.textContent : ''}`.trim();
}

function sendIQ(conn, iq, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
        conn.sendIQ(iq, resolve, (stanza) => reject(new Error(describeError(stanza))), timeoutMs);
    });
}

// Sends a ping to the server and waits for any answer (a stanza error counts:
// all that matters is that the server has read everything sent before it).
function roundTrip(after) {
    return new Promise((resolve, reject) => {
        conn.sendIQ(
            $iq({ type: 'get', to: Strophe.getDomainFromJid(opts.jid) }).c('ping', { xmlns: NS_PING }),
            () => resolve(),
            (stanza) => (stanza ? resolve() : reject(new Error(`no reply to a ping after ${after}`))),
            10000,
        );
    });
}

const bare = (jid) => Strophe.getBareJidFromJid(jid ?? '') ?? '';

// ---------------------------------------------------------------------------
// The scenario

Strophe.setLogLevel(opts.verbose ? Strophe.LogLevel.DEBUG : Strophe.LogLevel.WARN);

const connOptions = {};
if (opts.mechanism) {
    const byName = Object.values(Strophe).filter(
        (v) => typeof v === 'function' && v.prototype instanceof Strophe.SASLMechanism,
    );
    const mech = byName.find((M) => new M().mechname === opts.mechanism);
    if (!mech) usage(`unknown SASL mechanism ${opts.mechanism}`);
    connOptions.mechanisms = [mech];
}
const conn = new Strophe.Connection(opts.url, connOptions);
if (opts.verbose) {
    conn.rawInput = (data) => console.error(`<<< ${data}`);
    conn.rawOutput = (data) => console.error(`>>> ${data}`);
}

// Messages are collected from the moment the session starts, so one that
// arrives before we look for it (offline delivery, a fast peer) is not lost.
const chats = [];
const groupchats = [];
const appEvents = [];
let waiters = [];

function onStanza() {
    waiters = waiters.filter((w) => !w());
}

function waitFor(check) {
    return new Promise((resolve) => {
        const w = () => {
            const found = check();
            if (found) resolve(found);
            return Boolean(found);
        };
        if (!w()) waiters.push(w);
    });
}

conn.addHandler(
    (stanza) => {
        const type = stanza.getAttribute('type') || 'normal';
        // An app event: the app's JSON in <event xmlns="urn:xmppd:event:0"/>.
        const ev = child(stanza, 'event', NS_EVENT);
        if (ev) {
            appEvents.push({ name: ev.getAttribute('name'), id: ev.getAttribute('id'), payload: JSON.parse(ev.textContent) });
            onStanza();
        }
        const body = bodyOf(stanza);
        if (body !== null) {
            const entry = { from: stanza.getAttribute('from'), type, body, delayed: !!child(stanza, 'delay', NS_DELAY) };
            if (type === 'groupchat') groupchats.push(entry);
            else if (type === 'chat' || type === 'normal') chats.push(entry);
            onStanza();
        }
        return true;
    },
    null,
    'message',
);

let disconnected = null;
let sessionUp = false;
const connected = new Promise((resolve, reject) => {
    let lastCondition = '';
    conn.connect(
        opts.resource ? `${opts.jid}/${opts.resource}` : opts.jid,
        opts.password,
        (status, condition) => {
            if (condition) lastCondition = condition;
            switch (status) {
                case Strophe.Status.CONNECTED:
                    sessionUp = true;
                    resolve();
                    break;
                case Strophe.Status.AUTHFAIL:
                    reject(new Error(`authentication failed${condition ? ': ' + condition : ''}`));
                    break;
                case Strophe.Status.CONNFAIL:
                    reject(new Error(`connection failed${condition ? ': ' + condition : ''}`));
                    break;
                case Strophe.Status.CONNTIMEOUT:
                    reject(new Error('connection timed out'));
                    break;
                case Strophe.Status.ERROR:
                    reject(new Error(`connection error${condition ? ': ' + condition : ''}`));
                    break;
                case Strophe.Status.DISCONNECTED:
                    if (disconnected) {
                        disconnected();
                    } else if (!sessionUp) {
                        // Settles the connect promise unless an earlier
                        // status (AUTHFAIL, CONNFAIL) already said why.
                        reject(new Error(`disconnected${lastCondition ? ': ' + lastCondition : ''}`));
                    } else {
                        fail(`disconnected by the server${lastCondition ? ': ' + lastCondition : ''}`);
                    }
                    break;
            }
        },
    );
});

async function run() {
    stage = 'connect';
    await connected;
    emit({ event: 'connected', jid: conn.jid });

    stage = 'roster';
    const result = await sendIQ(conn, $iq({ type: 'get' }).c('query', { xmlns: NS_ROSTER }));
    const items = children(child(result, 'query', NS_ROSTER), 'item').map((item) => ({
        jid: item.getAttribute('jid'),
        name: item.getAttribute('name') || null,
        subscription: item.getAttribute('subscription') || 'none',
        groups: children(item, 'group').map((g) => g.textContent),
    }));
    emit({ event: 'roster', items });

    stage = 'presence';
    conn.send($pres());
    // Once the reply to a ping sent after it is in, the server has handled
    // the presence too.
    await roundTrip('the initial presence');
    emit({ event: 'online' });

    if (opts.send !== undefined) {
        stage = 'send';
        conn.send($msg({ to: opts.peer, type: 'chat' }).c('body').t(opts.send));
        emit({ event: 'sent' });
    }

    if (opts.event !== undefined) {
        stage = 'event';
        const e = await waitFor(() => appEvents.find((a) => a.name === opts.event));
        emit({ event: 'app-event', name: e.name, id: e.id, payload: e.payload });
    }

    if (opts.expect !== undefined) {
        stage = 'expect';
        const m = await waitFor(() => chats.find((c) => c.type === 'chat' && c.body === opts.expect));
        emit({ event: 'message', from: m.from, body: m.body });
        if (opts.reply !== undefined) {
            conn.send($msg({ to: bare(m.from), type: 'chat' }).c('body').t(opts.reply));
            emit({ event: 'replied', to: bare(m.from) });
        }
    }

    if (opts.room !== undefined) {
        stage = 'join';
        const occupant = `${opts.room}/${opts.nick}`;
        const tryJoin = () =>
            new Promise((resolve, reject) => {
                conn.addHandler(
                    (pres) => {
                        if (pres.getAttribute('from') !== occupant) return true;
                        if (pres.getAttribute('type') === 'error') {
                            const err = new Error(`cannot join ${opts.room}: ${describeError(pres)}`);
                            err.locked = !!child(child(pres, 'error'), 'item-not-found');
                            reject(err);
                            return false;
                        }
                        const x = child(pres, 'x', NS_MUC_USER);
                        const codes = children(x, 'status').map((s) => s.getAttribute('code'));
                        if (!codes.includes('110')) return true;
                        resolve(codes);
                        return false;
                    },
                    null,
                    'presence',
                );
                conn.send(
                    $pres({ to: occupant })
                        .c('x', { xmlns: NS_MUC })
                        .c('history', { maxstanzas: '0' }),
                );
            });
        // A room that another client has just created stays locked (XEP-0045
        // answers item-not-found) until its owner configures it: try again.
        let codes;
        for (let attempt = 1; ; attempt++) {
            try {
                codes = await tryJoin();
                break;
            } catch (e) {
                if (!e.locked || attempt >= 10) throw e;
                await new Promise((r) => setTimeout(r, 300));
            }
        }
        if (codes.includes('201')) {
            // We created the room: accept the default configuration so the
            // room is unlocked (XEP-0045 "instant room").
            stage = 'configure';
            await sendIQ(
                conn,
                $iq({ type: 'set', to: opts.room })
                    .c('query', { xmlns: NS_MUC_OWNER })
                    .c('x', { xmlns: 'jabber:x:data', type: 'submit' }),
            );
        }
        emit({ event: 'joined', room: opts.room, nick: opts.nick, created: codes.includes('201') });

        stage = 'groupchat';
        const text = `hello room from ${opts.transport}`;
        conn.send($msg({ to: opts.room, type: 'groupchat' }).c('body').t(text));
        const m = await waitFor(() => groupchats.find((g) => g.from === occupant && g.body === text && !g.delayed));
        emit({ event: 'groupchat', from: m.from, body: m.body });
    }

    stage = 'disconnect';
    // Everything sent so far has reached the server before we leave (BOSH
    // sends queued stanzas on its next request; a terminate would drop them).
    await roundTrip('the last stanza');
    await new Promise((resolve) => {
        disconnected = resolve;
        conn.disconnect('done');
    });
    emit({ event: 'done' });
    process.exit(0);
}

run().catch((e) => fail(e.message));
