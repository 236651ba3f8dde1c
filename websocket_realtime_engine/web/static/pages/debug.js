/* The debug console: a client of the engine with every frame shown, as Pusher's debug console. It
 * subscribes to any channel (private and presence signed through the admin session), publishes
 * client messages, and shows the engine's event log (`private-realtime.log`, docs/admin.md). */
(function () {
  "use strict";

  var KEEP = 500; // lines kept in each list

  function byId(id) {
    return document.getElementById(id);
  }

  function stamp() {
    return new Date().toISOString().slice(11, 23);
  }

  function line(listId, text, kind) {
    var li = document.createElement("li");
    li.textContent = text;
    if (kind) li.className = kind;
    var list = byId(listId);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > KEEP) list.removeChild(list.lastChild);
    return li;
  }

  var realtime = new Realtime();
  var pill = byId("connection");
  realtime.on("state", function (change) {
    pill.textContent = change.current;
    pill.dataset.state = change.current;
    byId("connection-id").textContent = realtime.connectionId ? "connection " + realtime.connectionId : "no connection";
  });
  realtime.on("frame", function (frame) {
    if (frame.frame && frame.frame.channel === "private-realtime.log" && frame.frame.event === "log") return; // shown below
    var kind = frame.direction === "in" ? "in" : "out";
    if (frame.frame && frame.frame.event === "error") kind = "error";
    line("frames", stamp() + (frame.direction === "in" ? "  ⇐ " : "  ⇒ ") + frame.text, kind);
  });
  realtime.on("error", function (error) {
    line("frames", stamp() + "  error " + (error.code || "") + " " + (error.message || error), "error");
  });

  var engineLog = realtime.subscribe("private-realtime.log");
  engineLog.bind("log", function (batch) {
    batch.events.forEach(function (event) {
      var detail = Object.keys(event)
        .filter(function (key) { return key !== "type" && key !== "at"; })
        .map(function (key) { return key + "=" + event[key]; })
        .join(" ");
      var at = new Date(event.at * 1000).toISOString().slice(11, 23);
      line("engine-log", at + "  " + batch.node_id + "  " + event.type + "  " + detail, event.type === "error" ? "error" : "");
    });
    if (batch.dropped) line("engine-log", stamp() + "  " + batch.dropped + " events dropped (over the log's rate)", "error");
  });

  byId("subscribe-form").addEventListener("submit", function (submitted) {
    submitted.preventDefault();
    var name = byId("subscribe-channel").value.trim();
    if (!name || realtime.channel(name)) return;
    var channel = realtime.subscribe(name);
    var item = line("channels", name + ": subscribing");
    item.dataset.channel = name;
    channel.on("subscribed", function () {
      item.textContent = name + ": subscribed";
      byId("publish-channel").value = byId("publish-channel").value || name;
    });
    channel.on("error", function (error) {
      item.textContent = name + ": " + (error.message || error.code);
      item.className = "error";
    });
    channel.bind("*", function () {});
  });

  byId("publish-form").addEventListener("submit", function (submitted) {
    submitted.preventDefault();
    var result = byId("publish-result");
    var name = byId("publish-channel").value.trim();
    var data;
    try {
      data = JSON.parse(byId("publish-data").value || "null");
    } catch (error) {
      result.textContent = "not JSON: " + error.message;
      return;
    }
    var channel = realtime.channel(name);
    if (!channel) {
      result.textContent = "subscribe to " + name + " first";
      return;
    }
    channel.publish(data).then(
      function () {
        result.textContent = "published " + stamp();
      },
      function (error) {
        result.textContent = "refused: " + (error.message || error.code);
      },
    );
  });
  window.debugConsole = { realtime: realtime };
})();
