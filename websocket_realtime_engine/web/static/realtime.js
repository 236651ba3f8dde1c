/*!
 * Shopologic Realtime: the browser client of the engine's native protocol (docs/protocol.md).
 * A plain script with no dependencies and no build step:
 *
 *   <script src="/realtime.js"></script>
 *   const realtime = new Realtime();
 *   realtime.subscribe("orders").bind("order.created", (data) => show(data.order));
 *
 * It reconnects with exponential back-off and full jitter, subscribes again to every channel after a
 * reconnect, recovers what was missed from each channel's last (offset, epoch) and says so per
 * channel (`recovery` event: `recovered: false` means "reload your state"), signs private and
 * presence channels through an auth URL with the page's shop session cookie, keeps presence
 * members, and falls back to Server-Sent Events (GET /api/v1/stream) when WebSockets cannot
 * connect. The whole API: docs/javascript-client.md.
 */
(function (global) {
  "use strict";

  var DEFAULTS = {
    url: null, // the engine's base URL (http or https); default: the page's origin
    authEndpoint: "/api/v1/authenticate", // relative to url
    userAuthEndpoint: "/api/v1/authenticate/user", // relative to url, for signin
    authHeaders: {}, // extra headers of the auth calls
    authCredentials: "same-origin", // fetch's credentials: the shop session cookie goes along
    authorizer: null, // function (channel, connectionId) -> Promise<{auth, channel_data?}>
    signin: false, // true: sign the connection in (userAuthEndpoint) before joining channels
    transports: ["websocket", "sse"], // in order of preference; the next is the fallback
    connectTimeout: 5000, // ms from opening a socket to its `connected` frame
    fallbackAfter: 2, // WebSocket attempts that never connected before falling back to SSE
    upgradeAfter: 60000, // ms on a fallback before trying the preferred transport again (0: never)
    initialDelay: 500, // ms: the first back-off ceiling
    maxDelay: 30000, // ms: the largest back-off ceiling
    stableAfter: 10000, // ms connected before the back-off starts again from initialDelay
    activityTimeout: null, // ms of silence before a ping; default: the server's heartbeat
    pongTimeout: 10000, // ms to wait for any frame after that ping before dropping the connection
    autoConnect: true,
  };

  // close codes after which reconnecting is wrong (docs/protocol.md section 7.2)
  var NO_RECONNECT = { 4009: "disconnected by the server" };
  // native events as the stream's control calls (docs/http-fallback.md, section 4)
  var STREAM_ACTIONS = {
    subscribe: "subscribe",
    unsubscribe: "unsubscribe",
    message: "publish",
    presence: "presence",
    signin: "signin",
    ping: "ping",
  };
  var STREAM_RETRY_MS = 3000; // how long a browser's EventSource waits before it reconnects
  var UPGRADE_MAX_MS = 15 * 60 * 1000; // the longest wait between two tries of the preferred transport

  function later(fn) {
    // a handler's exception must not break the client: report it outside the client's call stack
    setTimeout(fn, 0);
  }

  class Emitter {
    constructor() {
      this._handlers = new Map();
    }

    /** Call `handler` on every `name` event; returns this. */
    on(name, handler) {
      if (!this._handlers.has(name)) this._handlers.set(name, new Set());
      this._handlers.get(name).add(handler);
      return this;
    }

    /** Stop calling `handler` (or every handler of `name` when none is given). */
    off(name, handler) {
      var set = this._handlers.get(name);
      if (set) handler === undefined ? set.clear() : set.delete(handler);
      return this;
    }

    _emit(name) {
      var set = this._handlers.get(name);
      if (!set || set.size === 0) return;
      var args = Array.prototype.slice.call(arguments, 1);
      Array.from(set).forEach(function (handler) {
        try {
          handler.apply(null, args);
        } catch (error) {
          later(function () {
            throw error;
          });
        }
      });
    }

    _has(name) {
      var set = this._handlers.get(name);
      return Boolean(set && set.size);
    }
  }

  function realtimeError(code, message, extra) {
    var error = new Error(message);
    error.code = code;
    if (extra) Object.assign(error, extra);
    return error;
  }

  /** A channel: its publications (bind), its life (on), its position and, on presence, its members. */
  class Channel extends Emitter {
    constructor(client, name, options) {
      super();
      this.client = client;
      this.name = name;
      this.options = options || {};
      this.state = "unsubscribed"; // unsubscribed, subscribing, subscribed, failed
      this.position = null; // {offset, epoch} of the last publication seen (or the subscribe reply's)
      this.members = new Map(); // presence: user_id -> user_info
      this.me = null; // presence: this connection's member, when the auth answer named it
      this._bindings = new Map();
      // private-/presence- need auth; other names learn it from a 4009 (REALTIME_*_PATTERNS)
      this._needsAuth = Boolean(this.options.auth) || /^(private|presence)-/.test(name);
      this._authTried = false;
      this._joinId = null;
    }

    /** Call `handler(data, meta)` for each publication `event` ("*": every event) on this channel. */
    bind(event, handler) {
      if (!this._bindings.has(event)) this._bindings.set(event, new Set());
      this._bindings.get(event).add(handler);
      return this;
    }

    unbind(event, handler) {
      var set = this._bindings.get(event);
      if (set) handler === undefined ? set.clear() : set.delete(handler);
      return this;
    }

    /** Publish `data` as a client `message` (private and presence channels by default); resolves on
     * the server's ack. `options.echo`: receive it too. */
    publish(data, options) {
      if (this.state !== "subscribed") {
        return Promise.reject(realtimeError(4010, "not subscribed to " + this.name));
      }
      var frame = { event: "message", channel: this.name, data: data === undefined ? null : data };
      if (options && options.echo) frame.echo = true;
      return this.client._request(frame);
    }

    /** Leave the channel. */
    unsubscribe() {
      this.client.unsubscribe(this.name);
    }

    _reset() {
      this.state = "unsubscribed";
      this._authTried = false;
      this._joinId = null;
    }

    _subscribed(frame) {
      var resuming = this.position !== null; // subscribed before: it is to recover what it missed
      this.state = "subscribed";
      this._joinId = null;
      var data = frame.data || {};
      if (Array.isArray(data.members)) {
        this.members = new Map(
          data.members.map(function (member) {
            return [String(member.user_id), member.user_info === undefined ? null : member.user_info];
          }),
        );
      }
      // `recovered` answers a `since` (or, on a resumed stream, the Last-Event-ID): when true, the
      // replayed publications follow this reply and move the position themselves
      var recovered = resuming && frame.recovered !== undefined ? frame.recovered === true : undefined;
      if (!recovered && typeof frame.epoch === "string") {
        this.position = { offset: frame.offset || 0, epoch: frame.epoch };
      }
      this._emit("subscribed", { channel: this.name, position: this.position, recovered: recovered });
      if (Array.isArray(data.members)) this._emit("members", this.members);
      if (recovered !== undefined) {
        this._emit("recovery", { channel: this.name, recovered: recovered, position: this.position });
      }
    }

    _publication(frame) {
      var position = this.position;
      if (typeof frame.offset === "number" && typeof frame.epoch === "string") {
        if (position && position.epoch === frame.epoch && frame.offset <= position.offset) return; // seen
        var lost = position !== null && position.epoch !== frame.epoch;
        this.position = { offset: frame.offset, epoch: frame.epoch };
        // the stream was lost while connected (docs/protocol.md section 11): reload the state
        if (lost) this._emit("recovery", { channel: this.name, recovered: false, position: this.position });
      }
      var data = "data" in frame ? frame.data : null;
      var meta = { channel: this.name, event: frame.event, offset: frame.offset, epoch: frame.epoch };
      if ("user_id" in frame) meta.user_id = frame.user_id;
      this._deliver(frame.event, data, meta);
      this._deliver("*", data, meta);
    }

    _deliver(event, data, meta) {
      var set = this._bindings.get(event);
      if (!set) return;
      Array.from(set).forEach(function (handler) {
        try {
          handler(data, meta);
        } catch (error) {
          later(function () {
            throw error;
          });
        }
      });
    }

    _memberAdded(member) {
      var id = String(member.user_id);
      this.members.set(id, member.user_info === undefined ? null : member.user_info);
      this._emit("member_added", { user_id: id, user_info: this.members.get(id) });
    }

    _memberRemoved(member) {
      var id = String(member.user_id);
      this.members.delete(id);
      this._emit("member_removed", { user_id: id });
    }
  }

  /** The native protocol over one WebSocket. */
  class WebSocketTransport {
    constructor(url) {
      this.name = "websocket";
      this.pings = true;
      this.onframe = this.onclose = this.oninterrupt = null;
      var socket = (this._socket = new WebSocket(url));
      var self = this;
      socket.onmessage = function (message) {
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (error) {
          return; // the engine sends only JSON text frames
        }
        if (self.onframe) self.onframe(frame, message.data);
      };
      socket.onclose = function (event) {
        self._closed({ code: event.code, reason: event.reason });
      };
    }

    send(frame) {
      var text = JSON.stringify(frame);
      this._socket.send(text);
      return text;
    }

    /** Drop the connection now: no more frames or close events reach the client. */
    close() {
      var socket = this._socket;
      socket.onmessage = socket.onclose = null;
      this.onframe = this.onclose = null;
      try {
        socket.close(1000);
      } catch (error) {
        // already closing
      }
    }

    _closed(info) {
      var onclose = this.onclose;
      this.onframe = this.onclose = null;
      if (onclose) onclose(info);
    }
  }

  /** A realtime connection to the engine, kept up for the page's life. */
  class Realtime extends Emitter {
    constructor(options) {
      super();
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.state = "initialized"; // connecting, connected, unavailable, disconnected
      this.connectionId = null;
      this.transport = null; // "websocket" or "sse" while connected
      this.channels = new Map();
      this.user = null; // after signin: {user_id, user_info}
      this._transport = null;
      this._transportIndex = 0;
      this._failures = 0; // consecutive attempts of the current transport that never connected
      this._transportWorked = false; // the current transport connected once: its failures are outages
      this._attempt = 0; // back-off exponent
      this._generation = 0; // one per transport opened; stale callbacks compare it
      this._nextId = 1;
      this._pending = new Map();
      this._timers = {};
      this._heartbeat = null;
      this._probing = null; // a connection of the preferred transport tried while on a fallback
      this._upgradeDelay = this.options.upgradeAfter; // ms before the next such try
      this._retiring = null; // the fallback's transport after a move, closed once the new one has joined
      if (this.options.autoConnect) this.connect();
    }

    /** The engine's base URL (http or https), without a trailing slash. */
    get baseUrl() {
      var url = this.options.url || global.location.origin;
      return String(url).replace(/\/+$/, "");
    }

    /** Open the connection (done by the constructor unless `autoConnect: false`). */
    connect() {
      if (this.state === "connecting" || this.state === "connected") return this;
      this._manual = false;
      this._open();
      return this;
    }

    /** Close the connection and stop reconnecting; `connect()` opens it again. */
    disconnect() {
      this._manual = true;
      this._drop();
      this._clearTimer("retry");
      this._setState("disconnected");
      return this;
    }

    /** The channel `name`, joined now or as soon as the connection is up. `options.auth`: it needs
     * a signature even though its name does not say so (REALTIME_PRIVATE_PATTERNS). */
    subscribe(name, options) {
      var channel = this.channels.get(name);
      if (channel) return channel;
      channel = new Channel(this, name, options);
      this.channels.set(name, channel);
      if (this.state === "connected" && !this._signingIn) this._join(channel);
      return channel;
    }

    /** Leave `name` and forget it (its handlers and position). */
    unsubscribe(name) {
      var channel = this.channels.get(name);
      if (!channel) return;
      this.channels.delete(name);
      var joined = channel.state === "subscribed" || channel.state === "subscribing";
      channel._reset();
      if (joined && this.state === "connected") {
        this._send({ event: "unsubscribe", channel: name });
      }
      channel._emit("unsubscribed", { channel: name });
    }

    /** The channel `name` if subscribed through this client. */
    channel(name) {
      return this.channels.get(name) || null;
    }

    /** An application-level round trip; resolves with the time it took in ms. */
    ping() {
      var started = Date.now();
      return this._request({ event: "ping" }).then(function () {
        return Date.now() - started;
      });
    }

    // -- the connection ------------------------------------------------------------------------

    _setState(state, detail) {
      if (state === this.state) return;
      var previous = this.state;
      this.state = state;
      this._emit("state", Object.assign({ previous: previous, current: state }, detail || {}));
      this._emit(state, detail || {});
    }

    _open() {
      this._clearTimer("retry");
      this._setState("connecting", { transport: this.options.transports[this._transportIndex] });
      var generation = ++this._generation;
      var self = this;
      var transport;
      try {
        transport = this._makeTransport(this.options.transports[this._transportIndex]);
      } catch (error) {
        later(function () {
          if (generation === self._generation) self._lost({ code: 0, reason: String(error) });
        });
        return;
      }
      this._transport = transport;
      this._attach(transport);
      this._awaitConnected(this.options.connectTimeout, true);
    }

    /** Route the transport's callbacks to this connection (a generation: later ones are ignored). */
    _attach(transport) {
      var generation = this._generation;
      var self = this;
      transport.onframe = function (frame, text) {
        if (generation === self._generation) self._frame(frame, text);
      };
      transport.onclose = function (info) {
        if (generation === self._generation) self._lost(info);
      };
      transport.oninterrupt = function (info) {
        if (generation === self._generation) self._interrupted(info);
      };
    }

    /** No `connected` frame within `delay` ms: drop the transport and start over, after a back-off. */
    _awaitConnected(delay, timeout) {
      var self = this;
      this._setTimer("connect", delay, function () {
        self._drop();
        self._lost({ code: 0, reason: "no connected frame within " + delay + " ms", timeout: timeout });
      });
    }

    /** The stream was cut and its EventSource reconnects by itself, resuming with Last-Event-ID: the
     * connection is gone (a new id, new signatures) but the transport stays. */
    _interrupted(info) {
      this._forgetConnection();
      this._emit("closed", info);
      this._setState("unavailable", { code: info.code, reason: info.reason, retryIn: null });
      this._attach(this._transport);
      // the browser retries every few seconds; past this, a fresh stream after the back-off
      this._awaitConnected(this.options.connectTimeout + STREAM_RETRY_MS, false);
    }

    _makeTransport(name) {
      if (name === "websocket") {
        if (typeof global.WebSocket !== "function") throw new Error("WebSocket is not available");
        return new WebSocketTransport(this.baseUrl.replace(/^http/, "ws") + "/socket");
      }
      if (name === "sse") return new StreamTransport(this);
      throw new Error("unknown transport " + name);
    }

    /** Forget the current transport (closing it) and everything tied to its connection. */
    _drop() {
      var transport = this._transport;
      this._transport = null;
      if (transport) transport.close();
      this._retire();
      this._forgetConnection();
    }

    /** Close the fallback's transport kept open through a move to the preferred one. */
    _retire() {
      var retiring = this._retiring;
      this._retiring = null;
      this._clearTimer("retire");
      if (retiring) retiring.close();
    }

    /** Everything tied to one connection: its id, its pending replies, its channels' state. */
    _forgetConnection() {
      this._generation++;
      ["connect", "activity", "pong", "stable", "upgrade", "probe", "move"].forEach(this._clearTimer, this);
      if (this._probing) this._probing.close();
      this._probing = null;
      var pending = this._pending;
      this._pending = new Map();
      pending.forEach(function (request) {
        request.reject(realtimeError(0, "the connection was lost before the reply"));
      });
      this.connectionId = null;
      this.transport = null;
      this.user = null;
      this._signingIn = false;
      this.channels.forEach(function (channel) {
        channel._reset();
      });
    }

    _lost(info) {
      var wasConnected = this.state === "connected";
      this._drop();
      if (this._manual) return;
      this._emit("closed", info);
      if (NO_RECONNECT[info.code]) {
        this._setState("disconnected", { code: info.code, reason: info.reason || NO_RECONNECT[info.code] });
        return;
      }
      // a transport that never connected: blocked (a proxy) rather than down; a timeout says so at once
      if (!wasConnected) this._failures += info.timeout ? this.options.fallbackAfter : 1;
      var transports = this.options.transports;
      var blocked = !this._transportWorked && this._failures >= this.options.fallbackAfter;
      if (blocked && this._transportIndex < transports.length - 1) {
        this._transportIndex++;
        this._failures = 0;
        this._attempt = 0;
        this._emit("fallback", { transport: transports[this._transportIndex] });
        this._open();
        return;
      }
      var delay = this._backoff();
      this._setState("unavailable", { code: info.code, reason: info.reason, retryIn: delay });
      var self = this;
      this._setTimer("retry", delay, function () {
        self._open();
      });
    }

    /** Full jitter: a random delay up to min(maxDelay, initialDelay * 2^attempt). */
    _backoff() {
      var ceiling = Math.min(this.options.maxDelay, this.options.initialDelay * Math.pow(2, this._attempt));
      this._attempt = Math.min(this._attempt + 1, 30);
      return Math.floor(Math.random() * ceiling);
    }

    /** `upgraded`: the connection of a move back from the fallback, which counts as working (no
     * fallback again on its failures) only once it has lasted `stableAfter`. */
    _connected(frame, upgraded) {
      this._clearTimer("connect");
      var data = frame.data || {};
      this.connectionId = data.connection_id;
      this.transport = this._transport.name;
      this._failures = 0;
      this._transportWorked = !upgraded;
      var self = this;
      this._setTimer("stable", this.options.stableAfter, function () {
        self._attempt = 0;
        self._transportWorked = true;
        if (upgraded) self._upgradeDelay = self.options.upgradeAfter;
      });
      if (this._transportIndex > 0 && this.options.upgradeAfter > 0) this._awaitUpgrade();
      var heartbeat = typeof data.heartbeat === "number" ? data.heartbeat * 1000 : 25000;
      this._heartbeat = this.options.activityTimeout || heartbeat;
      this._activity();
      this._setState("connected", { connectionId: this.connectionId, transport: this.transport });
      var generation = this._generation;
      var join = function () {
        if (generation !== self._generation) return;
        self._signingIn = false;
        self.channels.forEach(function (channel) {
          self._join(channel);
        });
      };
      if (this.options.signin) {
        this._signingIn = true;
        this._signin().then(join, function (error) {
          if (generation === self._generation) self._emit("error", error);
          join();
        });
      } else {
        join();
      }
    }

    /** On a fallback: after `_upgradeDelay` ms, try the preferred transport beside it (a page loaded
     * while the engine was down fell back too, and a proxy may let WebSockets through later). */
    _awaitUpgrade() {
      var self = this;
      this._setTimer("upgrade", this._upgradeDelay, function () {
        self._probe();
      });
    }

    /** A connection of the preferred transport, opened beside the current one: once it says
     * `connected` and no request waits for its answer, the client moves over to it and each channel
     * joins again from its position (no publication lost or repeated); if it fails, the next try
     * waits twice as long. */
    _probe() {
      var name = this.options.transports[0];
      var probe;
      try {
        probe = this._makeTransport(name);
      } catch (error) {
        return; // not in this browser: stay
      }
      this._probing = probe;
      var self = this;
      var failed = function () {
        if (self._probing !== probe) return;
        self._probing = null;
        self._clearTimer("probe");
        self._clearTimer("move");
        probe.close();
        self._upgradeDelay = Math.min(self._upgradeDelay * 2, UPGRADE_MAX_MS);
        self._awaitUpgrade();
      };
      var move = function (frame) {
        if (self._probing !== probe) return;
        if (self._pending.size > 0) {
          // a request's answer is on its way over the fallback: moving now would report it lost
          self._setTimer("move", 50, function () {
            move(frame);
          });
          return;
        }
        self._probing = null;
        self._clearTimer("probe");
        // the fallback's connection is forgotten (its frames are ignored from now on) but closed only
        // once the new one has had the time to join: a presence member stays, no member_removed
        var previous = self._transport;
        self._transport = null;
        self._forgetConnection();
        self._retiring = previous;
        self._setTimer("retire", self.options.connectTimeout, function () {
          self._retire();
        });
        self._transportIndex = 0;
        self._failures = 0;
        self._attempt = 0;
        // back to the initial wait once this connection is stable; a flapping proxy waits longer each time
        self._upgradeDelay = Math.min(self._upgradeDelay * 2, UPGRADE_MAX_MS);
        self._transport = probe;
        self._attach(probe);
        var generation = self._generation;
        // a handler may call disconnect(): it closes the probe too, and the move ends there
        self._emit("upgrade", { transport: name });
        if (self._manual || generation !== self._generation) return;
        self._setState("connecting", { transport: name });
        if (self._manual || generation !== self._generation) return;
        self._connected(frame, true);
      };
      probe.onclose = failed;
      probe.onframe = function (frame) {
        if (frame.event === "connected") move(frame);
        else failed();
      };
      this._setTimer("probe", this.options.connectTimeout, failed);
    }

    /** Nothing heard for the heartbeat: ask (ping), and drop the connection if still nothing. */
    _activity() {
      this._clearTimer("pong");
      if (!this._transport || !this._transport.pings) return; // a stream's heartbeat is a comment
      var self = this;
      this._setTimer("activity", this._heartbeat, function () {
        self._send({ event: "ping" });
        self._setTimer("pong", self.options.pongTimeout, function () {
          self._drop();
          self._lost({ code: 1006, reason: "no answer to a ping within " + self.options.pongTimeout + " ms" });
        });
      });
    }

    _setTimer(name, delay, fn) {
      this._clearTimer(name);
      this._timers[name] = setTimeout(fn, delay);
    }

    _clearTimer(name) {
      if (this._timers[name] !== undefined) clearTimeout(this._timers[name]);
      delete this._timers[name];
    }

    // -- frames --------------------------------------------------------------------------------

    _send(frame) {
      if (!this._transport) return false;
      var text = this._transport.send(frame);
      if (this._has("frame")) this._emit("frame", { direction: "out", frame: frame, text: text });
      return true;
    }

    _request(frame) {
      if (this.state !== "connected" || !this._transport) {
        return Promise.reject(realtimeError(0, "not connected"));
      }
      var id = this._nextId++;
      frame.id = id;
      var self = this;
      return new Promise(function (resolve, reject) {
        self._pending.set(id, { resolve: resolve, reject: reject });
        self._send(frame);
      });
    }

    _frame(frame, text) {
      if (this._has("frame")) this._emit("frame", { direction: "in", frame: frame, text: text });
      if (this.state === "connected") this._activity();
      var channel = frame.channel !== undefined ? this.channels.get(frame.channel) : undefined;
      switch (frame.event) {
        case "connected":
          return this._connected(frame);
        case "subscribed":
          if (channel && frame.id !== undefined && frame.id === channel._joinId) channel._subscribed(frame);
          return;
        case "error":
          return this._error(frame, channel);
        case "member_added":
          if (channel) channel._memberAdded(frame.data || {});
          return;
        case "member_removed":
          if (channel) channel._memberRemoved(frame.data || {});
          return;
        case "unsubscribed":
        case "ack":
        case "pong":
        case "presence":
        case "signed_in":
          return this._reply(frame);
        default:
          if (channel && channel.state === "subscribed") channel._publication(frame);
      }
    }

    _reply(frame) {
      var request = frame.id !== undefined ? this._pending.get(frame.id) : undefined;
      if (!request) return;
      this._pending.delete(frame.id);
      request.resolve(frame);
    }

    _error(frame, channel) {
      var data = frame.data || {};
      var error = realtimeError(data.code, data.message, { channel: frame.channel, status: data.status });
      if (channel && frame.id !== undefined && frame.id === channel._joinId) {
        channel._joinId = null;
        var unauthorized = data.code === 4009 || data.code === "unauthorized"; // a frame, or a control call
        if (unauthorized && !channel._needsAuth && !channel._authTried) {
          channel._needsAuth = true; // a private or presence channel by the server's patterns
          return this._join(channel);
        }
        channel.state = "failed";
        channel._emit("error", error);
        return;
      }
      var request = frame.id !== undefined ? this._pending.get(frame.id) : undefined;
      if (request) {
        this._pending.delete(frame.id);
        request.reject(error);
        return;
      }
      this._emit("error", error);
    }

    // -- joining channels ----------------------------------------------------------------------

    _join(channel) {
      if (this.channels.get(channel.name) !== channel) return;
      channel.state = "subscribing";
      var generation = this._generation;
      var self = this;
      var ready = channel._needsAuth ? this._authorize(channel) : Promise.resolve(null);
      channel._authTried = channel._needsAuth;
      ready.then(
        function (signed) {
          if (generation !== self._generation || self.channels.get(channel.name) !== channel) return;
          var frame = { event: "subscribe", channel: channel.name, id: self._nextId++ };
          if (signed) {
            frame.auth = signed.auth;
            if (signed.channel_data) {
              frame.channel_data = signed.channel_data;
              channel.me = memberOf(signed.channel_data);
            }
          }
          // a resumed stream recovers from its Last-Event-ID; everything else from the client's position
          if (channel.position && !(self._transport.resumes && self._transport.resumes(channel.name))) {
            frame.since = { offset: channel.position.offset, epoch: channel.position.epoch };
          }
          channel._joinId = frame.id;
          self._send(frame);
        },
        function (error) {
          if (generation !== self._generation || self.channels.get(channel.name) !== channel) return;
          channel.state = "failed";
          channel._emit("error", error);
        },
      );
    }

    _authorize(channel) {
      if (typeof this.options.authorizer === "function") {
        return Promise.resolve(this.options.authorizer(channel.name, this.connectionId));
      }
      var body = { connection_id: this.connectionId, channel: channel.name };
      if (channel.options.channelData !== undefined) body.channel_data = channel.options.channelData;
      return this._post(this.options.authEndpoint, body);
    }

    _signin() {
      var self = this;
      return this._post(this.options.userAuthEndpoint, { connection_id: this.connectionId }).then(function (signed) {
        var frame = { event: "signin", auth: signed.auth, user_data: signed.user_data };
        return self._request(frame).then(function (reply) {
          self.user = reply.data || null;
          self._emit("signed_in", self.user);
          return self.user;
        });
      });
    }

    /** POST JSON to an endpoint of the engine; resolves with the answer, rejects with its error. */
    _post(path, body) {
      var url = /^https?:/.test(path) ? path : this.baseUrl + path;
      var headers = Object.assign({ "Content-Type": "application/json" }, this.options.authHeaders);
      return global
        .fetch(url, {
          method: "POST",
          headers: headers,
          body: JSON.stringify(body),
          credentials: this.options.authCredentials,
        })
        .then(function (response) {
          return response.json().then(
            function (answer) {
              if (response.ok) return answer;
              var detail = (answer && answer.error) || {};
              throw realtimeError(detail.code || "http_" + response.status, detail.message || response.statusText, {
                status: response.status,
              });
            },
            function () {
              throw realtimeError("http_" + response.status, "the answer of " + path + " is not JSON", {
                status: response.status,
              });
            },
          );
        });
    }
  }

  function memberOf(channelData) {
    try {
      var member = JSON.parse(channelData);
      return { user_id: String(member.user_id), user_info: member.user_info === undefined ? null : member.user_info };
    } catch (error) {
      return null;
    }
  }

  /** The HTTP fallback (docs/http-fallback.md): events over an EventSource on GET /api/v1/stream,
   * requests as control calls proven by the stream's token. When the stream is cut, the browser's
   * EventSource reconnects by itself with Last-Event-ID, and the engine resumes each channel from it. */
  class StreamTransport {
    #token = null; // the stream's secret: kept here, never in a URL, a log, a frame event or JSON

    constructor(client) {
      this.name = "sse";
      this.pings = false;
      this.onframe = this.onclose = this.oninterrupt = null;
      this._base = client.baseUrl;
      this._connectionId = null;
      this._subscribed = new Set(); // channels subscribed on this stream's current connection
      this._carried = new Set(); // ... and on the one before, which its Last-Event-ID resumes
      this._queues = new Map(); // channel -> the promise of its last control call (calls keep order)
      var source = (this._source = new EventSource(this._base + "/api/v1/stream"));
      var self = this;
      source.onmessage = function (message) {
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        self._event(frame, message.data);
      };
      source.onerror = function () {
        // CONNECTING: cut, the browser reconnects by itself; CLOSED: refused (not a stream), or closed
        if (source.readyState === EventSource.CLOSED) self._closed({ code: 0, reason: "the stream was refused" });
        else if (self._connectionId !== null) self._interrupted({ code: 1006, reason: "the stream was cut" });
      };
    }

    /** Whether `channel` is resumed by the stream itself (it was subscribed before the stream was cut). */
    resumes(channel) {
      return this._carried.has(channel);
    }

    _event(frame, text) {
      if (frame.event === "connected") {
        var data = frame.data || {};
        this.#token = data.token;
        this._connectionId = data.connection_id;
        frame = JSON.parse(text); // the client sees the frame without the token
        delete frame.data.token;
        text = JSON.stringify(frame);
      } else if (frame.event === "subscribed" && frame.channel !== undefined) {
        this._subscribed.add(frame.channel);
      } else if (frame.event === "unsubscribed") {
        this._subscribed.delete(frame.channel);
        this._carried.delete(frame.channel);
      } else if (frame.event === "close") {
        var close = frame.data || {};
        // 4009: do not come back; anything else: the response ends and the browser reconnects
        if (NO_RECONNECT[close.code]) this._closed({ code: close.code, reason: close.reason });
        return;
      }
      if (this.onframe) this.onframe(frame, text);
    }

    _interrupted(info) {
      this._subscribed.forEach(this._carried.add, this._carried);
      this._subscribed = new Set();
      this.#token = this._connectionId = null;
      this._queues = new Map();
      if (this.oninterrupt) this.oninterrupt(info);
    }

    _closed(info) {
      var onclose = this.onclose;
      this.close();
      if (onclose) onclose(info);
    }

    /** A native frame as its control call; the answer comes back as a frame (errors and acks: the
     * stream carries `subscribed` and `unsubscribed` itself, in order with the publications). */
    send(frame) {
      var action = STREAM_ACTIONS[frame.event];
      var text = JSON.stringify(frame);
      var self = this;
      if (action === undefined) {
        later(function () {
          self._answer(frame, 400, { error: { code: "unsupported", message: frame.event + " is not a control call" } });
        });
        return text;
      }
      var connectionId = this._connectionId; // an answer after the stream was cut is for nobody
      var url = this._base + "/api/v1/stream/" + encodeURIComponent(connectionId) + "/" + action;
      var body = Object.assign({ token: this.#token }, frame);
      delete body.event;
      var queues = this._queues;
      var previous = queues.get(frame.channel) || Promise.resolve();
      var call = previous.then(function () {
        return global
          .fetch(url, {
            method: "POST",
            headers: { "Content-Type": "text/plain" }, // a simple request: no CORS preflight
            body: JSON.stringify(body),
            credentials: "omit",
          })
          .then(function (response) {
            return response.json().then(function (answer) {
              if (connectionId === self._connectionId) self._answer(frame, response.status, answer);
            });
          })
          .catch(function (error) {
            var failed = { error: { code: "network_error", message: String(error) } };
            if (connectionId === self._connectionId) self._answer(frame, 0, failed);
          });
      });
      queues.set(frame.channel, call);
      return text;
    }

    _answer(frame, status, answer) {
      if (!this.onframe) return;
      if (status === 200) {
        if (answer && answer.event === "ack") this.onframe(answer, JSON.stringify(answer));
        return;
      }
      var error = (answer && answer.error) || {};
      var data = { code: error.code || "http_" + status, message: error.message || "control call failed" };
      data.status = status;
      var reply = { event: "error", channel: frame.channel, id: frame.id, data: data };
      this.onframe(reply, JSON.stringify(reply));
    }

    close() {
      this.onframe = this.onclose = this.oninterrupt = null;
      this._source.onmessage = this._source.onerror = null;
      this._source.close();
    }
  }

  Realtime.Channel = Channel;
  Realtime.DEFAULTS = DEFAULTS;
  Realtime.version = "1";
  global.Realtime = Realtime;
  if (typeof module === "object" && module && module.exports) module.exports = Realtime;
})(typeof window !== "undefined" ? window : globalThis);
