#!/usr/bin/env node
// Drives the Converse.js web chat (/chat/) in headless Chromium the way a
// person would: log in through Converse's form, open the chat with a contact
// from the roster, type a message and press Enter, wait for the contact's
// reply, take a screenshot. Reports one JSON object per line on stdout.
//
//   node web/test/converse.mjs --url http://127.0.0.1:5280/chat/
//       --jid user@domain --password PW --peer peer@domain
//       --send TEXT --expect TEXT [--screenshot PATH] [--timeout SECONDS]
//       [--chromium PATH] [--trace PATH] [--history] [--avatar] [--upload PATH]
//       [--bookmark ROOM=NAME]... [--stranger JID=TEXT] [--new-chat JID=TEXT]
//
// With --avatar, once the chat is open it waits for the peer's avatar (its
// vCard's PHOTO, XEP-0054, which Converse fetches itself) in the roster and
// in the chat's heading, and reports both images' data: URIs ("avatar"), so
// that the test can compare them with the photo it set.
//
// With --upload PATH, after the exchange of messages it gives the file to
// the chat toolbar's file input, as choosing it would: Converse asks the
// server's upload service (XEP-0363) for a slot, PUTs the file and sends
// its URL to the peer. It reports the URL its own message links to
// ("uploaded").
//
// With --bookmark ROOM=NAME (repeatable), after that it checks the rooms
// the account has bookmarked with autojoin, which Converse fetches from the
// server after login and joins: each room is in the list of open
// groupchats under NAME; opened from there, its chat area shows (Converse
// draws it only once the room is entered); and the Bookmarks dialog lists
// it under NAME. It reports the rooms with the names it saw, and which
// bookmark stores the page asked the server for ("bookmarks": queried
// lists "urn:xmpp:bookmarks:1" for XEP-0402's PEP node, "storage:bookmarks"
// for XEP-0048's, "jabber:iq:private" for private XML storage), read from
// what the browser sent over the WebSocket or in BOSH requests.
//
// With --stranger JID=TEXT, after that it waits for a message TEXT from
// JID, who is not in the roster: the chat with JID shows up (opened from
// the list of chats if Converse did not open it) and shows the message
// ("stranger"). With --new-chat JID=TEXT it then opens a chat with JID
// through the roster menu's "Start a new chat" dialog, types TEXT and sends
// it ("new-chat"), once Converse shows it as sent.
//
// With --history, after logging out it opens the page again in a new
// browser context (a second device: nothing of the first one's browser
// storage), logs in again, opens the same chat and waits for the two
// messages of the first visit to show: Converse fetches them from the
// server's message archive (XEP-0313).
//
// Events: "loggedin", "chat", "avatar", "sent", "message", "uploaded",
// "stranger", "new-chat", "bookmarks", "screenshot", "loggedout"
// (a clean logout through the UI, best effort), "history" (both messages
// shown again after the reload), "done"; on
// failure a screenshot, then {"event":"error"} and exit status 1 (2 for bad
// usage). The peer must be in the user's roster (mutual subscription) and
// online or able to receive offline messages; another client plays the peer.
//
// stderr gets diagnostics as JSON lines: browser console errors and warnings
// ("console"), uncaught page errors ("pageerror"), HTTP errors and failed
// requests ("http"), and requests to other hosts, which are blocked
// ("blocked"). --trace PATH writes the XMPP traffic to PATH: WebSocket frames
// and BOSH request and response bodies, one per line, ">>>" for what the
// browser sent and "<<<" for what it got.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-quic',
    '--no-first-run',
    '--disable-component-update',
    '--disable-sync',
];

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function diag(obj) {
    process.stderr.write(JSON.stringify(obj) + '\n');
}

function usage(message) {
    process.stderr.write(
        `converse.mjs: ${message}\n` +
            'usage: converse.mjs --url URL --jid user@domain --password PW --peer JID --send TEXT --expect TEXT\n' +
            '       [--screenshot PATH] [--timeout SECONDS] [--chromium PATH] [--trace PATH]\n',
    );
    process.exit(2);
}

let opts;
try {
    ({ values: opts } = parseArgs({
        options: {
            url: { type: 'string' },
            jid: { type: 'string' },
            password: { type: 'string' },
            peer: { type: 'string' },
            send: { type: 'string' },
            expect: { type: 'string' },
            screenshot: { type: 'string', default: path.join(os.tmpdir(), 'xmppd-converse.png') },
            timeout: { type: 'string', default: '60' },
            chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
            trace: { type: 'string' },
            history: { type: 'boolean', default: false },
            avatar: { type: 'boolean', default: false },
            upload: { type: 'string' },
            bookmark: { type: 'string', multiple: true, default: [] },
            stranger: { type: 'string' },
            'new-chat': { type: 'string' },
            help: { type: 'boolean', short: 'h', default: false },
        },
        strict: true,
        allowPositionals: false,
    }));
} catch (e) {
    usage(e.message);
}
if (opts.help) usage('help');
for (const name of ['url', 'jid', 'password', 'peer', 'send', 'expect']) {
    if (opts[name] === undefined) usage(`--${name} is required`);
}
let pageURL;
try {
    pageURL = new URL(opts.url);
} catch {
    usage(`--url is not a URL: ${opts.url}`);
}
if (!/^[^@/]+@[^@/]+$/.test(opts.peer)) usage('--peer must be a bare JID, user@domain');
if (opts.send.trim() === '' || opts.expect.trim() === '') usage('--send and --expect must not be blank');
const timeoutSeconds = Number(opts.timeout);
if (!(timeoutSeconds > 0)) usage('--timeout must be a positive number of seconds');
if (opts.upload !== undefined && !fs.existsSync(opts.upload)) usage(`--upload: no file at ${opts.upload}`);
const bookmarks = opts.bookmark.map((b) => {
    const [, jid, name] = /^([^@/=]+@[^@/=]+)=(.+)$/.exec(b) ?? [];
    if (!jid) usage(`--bookmark must be ROOM=NAME with ROOM a bare JID: ${b}`);
    return { jid, name };
});
// --stranger JID=TEXT and --new-chat JID=TEXT name someone not in the
// roster and a message body.
function jidAndText(name) {
    if (opts[name] === undefined) return undefined;
    const [, jid, text] = /^([^@/=]+@[^@/=]+)=(.+)$/.exec(opts[name]) ?? [];
    if (!jid) usage(`--${name} must be JID=TEXT with JID a bare JID: ${opts[name]}`);
    return { jid, text };
}
const stranger = jidAndText('stranger');
const newChat = jidAndText('new-chat');
if (!fs.existsSync(opts.chromium)) usage(`no browser at ${opts.chromium} (scripts/web-deps.sh installs Debian's chromium)`);

const screenshotPath = path.resolve(opts.screenshot);
const deadline = Date.now() + timeoutSeconds * 1000;
const remaining = () => Math.max(1, deadline - Date.now());
let stage = 'start';

// The page may load from and connect to loopback and the page's own host;
// anything else is blocked and reported.
function allowedHost(hostname) {
    const h = hostname.replace(/^\[|\]$/g, '');
    return h === pageURL.hostname.replace(/^\[|\]$/g, '') || h === 'localhost' || h === '::1' || /^127\./.test(h);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-converse-profile-'));
let browser = null;
let page = null;
let traceOut = null;

// The bookmark stores the page asked the server for, by what an IQ get for
// each looks like on the wire (Strophe writes attributes in double quotes,
// but either is matched).
const BOOKMARK_QUERIES = [
    [/<items\b[^>]*\bnode=(["'])urn:xmpp:bookmarks:1\1/, 'urn:xmpp:bookmarks:1'],
    [/<items\b[^>]*\bnode=(["'])storage:bookmarks\1/, 'storage:bookmarks'],
    [/<query\b[^>]*\bxmlns=(["'])jabber:iq:private\1[^>]*>\s*<storage\b[^>]*storage:bookmarks/, 'jabber:iq:private'],
];
const bookmarkQueries = new Set();
function noteSent(data) {
    for (const [re, what] of BOOKMARK_QUERIES) {
        if (re.test(data)) bookmarkQueries.add(what);
    }
}

async function cleanup() {
    try {
        await browser?.close();
    } catch {
        // the browser may already be gone
    }
    fs.rmSync(userDataDir, { recursive: true, force: true });
}

async function screenshot() {
    if (!page) return;
    fs.mkdirSync(path.dirname(screenshotPath), { recursive: true });
    await page.screenshot({ path: screenshotPath, timeout: 10000 });
    emit({ event: 'screenshot', path: screenshotPath });
}

// The login problem Converse shows (an error alert over its login form), if
// any. Read in one go: the form is re-rendered while logging in.
async function loginFeedback() {
    const text = await page.evaluate(() => {
        const el = document.querySelector('#converse-login .conn-feedback.alert-danger:not(.d-none) .feedback-message');
        return el?.textContent ?? '';
    });
    return text.trim() || null;
}

// Messages from before this run (history from the archive or the browser's
// cache) do not count: a message's time (data-isodate) must be at most this
// far before the start. Tests should still use bodies unique to each run.
const SKEW_MS = 10000;
const startedAt = Date.now();

async function waitForMessage(peer, predicate) {
    // Polls the chat view for a message whose body is the text and whose
    // sender is (or is not) the peer. data-from is the sender's JID.
    await page.waitForFunction(
        ({ peer, text, fromPeer, notBefore }) => {
            const view = document.querySelector(`converse-chat[jid="${CSS.escape(peer)}"]`);
            if (!view) return false;
            return [...view.querySelectorAll('.chat-msg')].some((el) => {
                const from = el.getAttribute('data-from') || '';
                const isPeer = from === peer || from.startsWith(peer + '/');
                const when = Date.parse(el.getAttribute('data-isodate') || '');
                const body = el.querySelector('.chat-msg__text')?.textContent?.trim();
                return isPeer === fromPeer && body === text.trim() && !(when < notBefore);
            });
        },
        { peer, ...predicate, notBefore: startedAt - SKEW_MS },
        { polling: 200, timeout: remaining() },
    );
}

async function scenario() {
    stage = 'launch';
    browser = await chromium.launch({
        executablePath: opts.chromium,
        // Exactly these arguments: Playwright's own defaults are left out, so
        // it needs its pipe and a profile directory named here.
        ignoreDefaultArgs: true,
        args: [...CHROMIUM_ARGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe'],
        headless: true,
        timeout: Math.min(30000, remaining()),
    });
    await openPage();
    await loginAndOpenChat();

    if (opts.avatar) {
        stage = 'avatar';
        await avatars();
    }

    stage = 'send';
    const textarea = page.locator(`converse-chat[jid="${opts.peer}"] textarea.chat-textarea`);
    await textarea.click({ timeout: remaining() });
    await textarea.fill(opts.send, { timeout: remaining() });
    await textarea.press('Enter', { timeout: remaining() });
    // Sent once Converse shows it as our own message in the chat.
    await waitForMessage(opts.peer, { text: opts.send, fromPeer: false });
    emit({ event: 'sent' });

    stage = 'expect';
    await waitForMessage(opts.peer, { text: opts.expect, fromPeer: true });
    emit({ event: 'message', body: opts.expect });

    if (opts.upload !== undefined) {
        stage = 'upload';
        await uploadFile(opts.upload);
    }

    if (stranger !== undefined) {
        stage = 'stranger';
        await strangersMessage(stranger);
    }

    if (newChat !== undefined) {
        stage = 'new-chat';
        await startNewChat(newChat);
    }

    if (bookmarks.length > 0) {
        stage = 'bookmarks';
        await bookmarkedRooms(bookmarks);
    }

    stage = 'screenshot';
    await screenshot();

    stage = 'logout';
    await logout();

    if (opts.history) {
        // A new context shares nothing with the first (no IndexedDB, no
        // localStorage): what the chat shows comes from the server.
        stage = 'reload';
        await page.context().close();
        await openPage();
        await loginAndOpenChat();
        stage = 'history';
        await waitForMessage(opts.peer, { text: opts.send, fromPeer: false });
        await waitForMessage(opts.peer, { text: opts.expect, fromPeer: true });
        emit({ event: 'history' });
        await logout();
    }
}

// openPage opens the web chat in a new browser context, with the
// diagnostics and the blocking of other hosts.
async function openPage() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();

    page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') {
            diag({ event: 'console', type: msg.type(), text: msg.text(), location: msg.location()?.url || undefined });
        }
    });
    page.on('pageerror', (err) => diag({ event: 'pageerror', message: err.message }));
    page.on('requestfailed', (req) => {
        const failure = req.failure()?.errorText;
        if (failure !== 'net::ERR_BLOCKED_BY_CLIENT') diag({ event: 'http', url: req.url(), failure });
    });
    page.on('response', (res) => {
        if (res.status() >= 400) diag({ event: 'http', url: res.url(), status: res.status() });
    });
    page.on('websocket', (ws) => ws.on('framesent', (f) => noteSent(String(f.payload))));
    page.on('request', (req) => {
        if (req.method() === 'POST') noteSent(req.postData() ?? '');
    });
    await context.route('**/*', (route) => {
        const u = new URL(route.request().url());
        if (['http:', 'https:'].includes(u.protocol) && !allowedHost(u.hostname)) {
            diag({ event: 'blocked', url: u.href });
            return route.abort('blockedbyclient');
        }
        return route.continue();
    });

    if (opts.trace) {
        fs.mkdirSync(path.dirname(path.resolve(opts.trace)), { recursive: true });
        // One file for every page the run opens (--history opens two).
        traceOut ??= fs.createWriteStream(opts.trace);
        const out = traceOut;
        const line = (dir, via, data) => out.write(`${new Date().toISOString()} ${via} ${dir} ${String(data).replace(/\n/g, ' ')}\n`);
        page.on('websocket', (ws) => {
            line('---', 'ws', `open ${ws.url()}`);
            ws.on('framesent', (f) => line('>>>', 'ws', f.payload));
            ws.on('framereceived', (f) => line('<<<', 'ws', f.payload));
            ws.on('close', () => line('---', 'ws', 'close'));
        });
        page.on('requestfinished', async (req) => {
            if (req.method() !== 'POST' || !/xml/.test(req.headers()['content-type'] || '')) return;
            line('>>>', 'bosh', req.postData() ?? '');
            try {
                line('<<<', 'bosh', (await (await req.response())?.text()) ?? '');
            } catch {
                // the page is gone
            }
        });
    }

    stage = 'load';
    await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: remaining() });
}

// loginAndOpenChat logs in through Converse's form and opens the chat with
// the peer.
async function loginAndOpenChat() {
    stage = 'login';
    const jidInput = page.locator('#converse-login-jid');
    await jidInput.waitFor({ state: 'visible', timeout: remaining() });
    await jidInput.fill(opts.jid);
    await page.locator('#converse-login-password').fill(opts.password);
    await page.locator('#converse-login button[type="submit"]').click();

    // Logged in once the roster shows the peer; a failed login leaves the
    // form up with an error alert instead.
    stage = 'roster';
    const contact = page.locator(`converse-roster a.open-chat[data-jid="${opts.peer}"]`);
    for (;;) {
        if (await contact.first().isVisible()) break;
        const problem = await loginFeedback();
        if (problem) throw new Error(`login failed: ${problem}`);
        if (Date.now() >= deadline) throw new Error(`timed out: ${opts.peer} did not appear in the roster`);
        await page.waitForTimeout(200);
    }
    emit({ event: 'loggedin' });

    stage = 'open-chat';
    await contact.first().click({ timeout: remaining() });
    const chat = page.locator(`converse-chat[jid="${opts.peer}"]`);
    const textarea = chat.locator('textarea.chat-textarea');
    await textarea.waitFor({ state: 'visible', timeout: remaining() });
    emit({ event: 'chat', jid: opts.peer });
}

// avatars waits until the peer's avatar in the roster and in the chat's
// heading is an image (not the initials Converse shows without a vCard
// photo) and reports both data: URIs.
async function avatars() {
    // Converse draws an avatar as <svg><image href="data:TYPE;base64,…"/>.
    const image = (el) => el.locator('converse-avatar svg image[href^="data:"]').first();
    const roster = image(page.locator(`converse-roster a.open-chat[data-jid="${opts.peer}"]`));
    const heading = image(page.locator(`converse-chat[jid="${opts.peer}"] converse-chat-heading`));
    await roster.waitFor({ state: 'attached', timeout: remaining() });
    await heading.waitFor({ state: 'attached', timeout: remaining() });
    emit({ event: 'avatar', roster: await roster.getAttribute('href'), heading: await heading.getAttribute('href') });
}

// uploadFile hands file to the chat's file input (the toolbar shows it
// once disco says the server has an upload service) and waits for our own
// message linking to the uploaded file: Converse shows the link only
// after the PUT succeeded, and sends the message then.
async function uploadFile(file) {
    const input = page.locator(`converse-chat[jid="${opts.peer}"] converse-chat-toolbar input.fileupload`);
    await input.waitFor({ state: 'attached', timeout: remaining() });
    await input.setInputFiles(file, { timeout: remaining() });
    const url = await page.waitForFunction(
        ({ peer, name, notBefore }) => {
            const view = document.querySelector(`converse-chat[jid="${CSS.escape(peer)}"]`);
            for (const el of view?.querySelectorAll('.chat-msg') ?? []) {
                const from = el.getAttribute('data-from') || '';
                if (from === peer || from.startsWith(peer + '/')) continue;
                if (Date.parse(el.getAttribute('data-isodate') || '') < notBefore) continue;
                for (const link of el.querySelectorAll('a[href], img[src]')) {
                    const u = link.getAttribute('href') || link.getAttribute('src');
                    if (u.includes('/upload/') && decodeURIComponent(u).endsWith('/' + name)) return u;
                }
            }
            return false;
        },
        { peer: opts.peer, name: path.basename(file), notBefore: startedAt - SKEW_MS },
        { polling: 200, timeout: remaining() },
    );
    emit({ event: 'uploaded', url: await url.jsonValue() });
}

// strangersMessage waits for a message from someone not in the roster:
// Converse lists the chat among the open ones, and opened from there it
// shows the message.
async function strangersMessage({ jid, text }) {
    const entry = page.locator(`converse-roster a.open-chat[data-jid="${jid}"], converse-chats a.open-chat[data-jid="${jid}"], a.open-chat[data-jid="${jid}"]`);
    let opened = false;
    for (;;) {
        if (await page.locator(`converse-chat[jid="${jid}"]`).count()) break;
        if (await entry.first().isVisible()) {
            await entry.first().click({ timeout: remaining() });
            opened = true;
            break;
        }
        if (Date.now() >= deadline) throw new Error(`no chat with ${jid} appeared for their message`);
        await page.waitForTimeout(200);
    }
    await waitForMessage(jid, { text, fromPeer: true });
    emit({ event: 'stranger', jid, body: text, opened });
}

// startNewChat opens a chat with a JID through the roster's "Start a new
// chat" dialog, as a person who knows only the address would, and sends
// text in it.
async function startNewChat({ jid, text }) {
    await page.locator('converse-roster converse-dropdown button.dropdown-toggle').first().click({ timeout: remaining() });
    await page.locator('converse-roster a.new-chat').first().click({ timeout: remaining() });
    const dialog = page.locator('converse-new-chat-modal');
    await dialog.locator('input[name="jid"]').fill(jid, { timeout: remaining() });
    await dialog.locator('button[type="submit"]').click({ timeout: remaining() });
    const textarea = page.locator(`converse-chat[jid="${jid}"] textarea.chat-textarea`);
    await textarea.waitFor({ state: 'visible', timeout: remaining() });
    await textarea.click({ timeout: remaining() });
    await textarea.fill(text, { timeout: remaining() });
    await textarea.press('Enter', { timeout: remaining() });
    await waitForMessage(jid, { text, fromPeer: false });
    emit({ event: 'new-chat', jid, body: text });
}

// bookmarkedRooms checks that Converse joined the bookmarked rooms and shows
// them under their names, in the list of open groupchats and in the
// Bookmarks dialog, and reports what it saw.
async function bookmarkedRooms(rooms) {
    const seen = [];
    for (const { jid, name } of rooms) {
        // The rooms list names a room by its MUC model's name: the room's
        // own (disco#info), which Converse keeps in the bookmark too.
        const entry = page.locator(`converse-rooms-list a.open-room[data-room-jid="${jid}"]`);
        try {
            await entry.waitFor({ state: 'visible', timeout: Math.min(20000, remaining()) });
        } catch {
            const asked = [...bookmarkQueries].sort().join(', ') || 'nothing';
            throw new Error(`${jid} is not among the open groupchats; the page asked for bookmarks from: ${asked}`);
        }
        const listed = await waitForAttribute(entry, 'data-room-name', name);
        await entry.click({ timeout: remaining() });
        // The chat area is drawn once the room is entered (XEP-0045 §7.2:
        // our own presence came back); before, a spinner or a form.
        const muc = page.locator(`converse-muc[jid="${jid}"]`);
        await muc.locator('converse-muc-chatarea textarea.chat-textarea').waitFor({ state: 'visible', timeout: remaining() });
        seen.push({ jid, listed, entered: true });
    }

    // The Bookmarks dialog, from the groupchats' menu.
    await page.locator('converse-rooms-list converse-dropdown button.dropdown-toggle').click({ timeout: remaining() });
    await page.locator('converse-rooms-list a.show-bookmark-list-modal').click({ timeout: remaining() });
    const dialog = page.locator('converse-bookmark-list-modal');
    for (const room of seen) {
        const want = rooms.find((r) => r.jid === room.jid).name;
        const item = dialog.locator(`converse-bookmarks a.open-room[data-room-jid="${room.jid}"]`);
        await item.waitFor({ state: 'visible', timeout: remaining() });
        room.bookmarked = await waitForText(item, want);
    }
    await dialog.locator('.modal-header button[data-bs-dismiss="modal"]').first().click({ timeout: remaining() });
    await dialog.locator('.modal-dialog').waitFor({ state: 'hidden', timeout: remaining() });
    emit({ event: 'bookmarks', rooms: seen, queried: [...bookmarkQueries].sort() });
}

// waitForAttribute waits a few seconds at most for el's attribute to be
// want, and returns what it is then, for the test to judge.
function waitForAttribute(el, attribute, want) {
    return settle(() => el.getAttribute(attribute, { timeout: remaining() }), want);
}

// waitForText is waitForAttribute for el's text, trimmed.
function waitForText(el, want) {
    return settle(async () => (await el.textContent({ timeout: remaining() }))?.trim(), want);
}

async function settle(read, want) {
    const until = Math.min(deadline, Date.now() + 5000);
    for (;;) {
        const got = await read();
        if (got === want || Date.now() >= until) return got;
        await page.waitForTimeout(200);
    }
}

// Logs out through Converse's profile dialog, so that the server sees the
// session end (unavailable presence, closed stream) instead of a dropped
// connection: a BOSH session would otherwise stay up until its inactivity
// timeout, and on a server with stream management (XEP-0198) a WebSocket
// session would wait to be resumed, both still taking messages sent to the
// bare JID. Best effort: a failure is reported on stderr only.
async function logout() {
    const t = () => Math.min(10000, remaining());
    try {
        await page.locator('converse-controlbox a.show-profile').first().click({ timeout: t() });
        await page.locator('converse-profile-modal button.btn-danger').click({ timeout: t() });
        await page.locator('form.confirm button[type="submit"]').click({ timeout: t() });
        await page.locator('#converse-login-jid').waitFor({ state: 'visible', timeout: t() });
        emit({ event: 'loggedout' });
    } catch (e) {
        diag({ event: 'logout-failed', message: e.message.split('\n')[0] });
    }
}

let timer;
const timedOut = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutSeconds}s`)), timeoutSeconds * 1000);
});

try {
    await Promise.race([scenario(), timedOut]);
    clearTimeout(timer);
    await cleanup();
    emit({ event: 'done' });
    process.exit(0);
} catch (e) {
    clearTimeout(timer);
    const failedStage = stage;
    try {
        await screenshot();
    } catch (se) {
        diag({ event: 'screenshot-failed', message: se.message });
    }
    emit({ event: 'error', stage: failedStage, message: e.message.split('\n')[0] });
    await cleanup();
    process.exit(1);
}
